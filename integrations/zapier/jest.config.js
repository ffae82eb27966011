'use strict';
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.test.js'],
  testTimeout: 60000,
  maxWorkers: 5,
  verbose: true,
};
