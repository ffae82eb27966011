'use strict';
// "Start Video Generation": submits the job and returns the pending generation at once.
// Use "Find Generation" or the "Generation Finished" trigger (or your own webhook_url) later.
const { createVideoGeneration: op } = require('../generated/operations');
const { requestOperation } = require('../lib/genhook');

const perform = async (z, bundle) => {
  const response = await requestOperation(z, bundle, op, bundle.inputData);
  return response.data;
};

module.exports = {
  key: 'start_video_generation',
  noun: op.noun,
  display: {
    label: 'Start Video Generation',
    description:
      'Submits a text- or image-to-video generation and continues at once with the pending job (no waiting). Optionally give a Webhook URL for the signed result.',
  },
  operation: {
    inputFields: op.inputFields,
    perform,
    outputFields: op.outputFields,
    sample: { ...op.sample, status: 'pending', phase: 'queued', phase_label: 'Queued', output_url: null, progress: 0, completed_at: null },
  },
};
