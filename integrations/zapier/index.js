'use strict';
const { version } = require('./package.json');
const { version: platformVersion } = require('zapier-platform-core');

const authentication = require('./authentication');
const middleware = require('./middleware');
const generateVideo = require('./creates/generate_video');
const startVideoGeneration = require('./creates/start_video_generation');
const findGeneration = require('./searches/find_generation');
const generationFinished = require('./triggers/generation_finished');
const listModels = require('./triggers/list_models');

const byKey = (...definitions) => Object.fromEntries(definitions.map((d) => [d.key, d]));

module.exports = {
  version,
  platformVersion,
  authentication,
  beforeRequest: middleware.befores,
  afterResponse: middleware.afters,
  triggers: byKey(generationFinished, listModels),
  creates: byKey(generateVideo, startVideoGeneration),
  searches: byKey(findGeneration),
};
