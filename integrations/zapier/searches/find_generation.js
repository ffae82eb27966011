'use strict';
// "Find Generation": one generation by id; none found (404) is an empty result, not an error.
const { getVideoGeneration: op } = require('../generated/operations');
const { requestOperation, problemError } = require('../lib/genhook');

const perform = async (z, bundle) => {
  const response = await requestOperation(z, bundle, op, bundle.inputData, { skipThrowForStatus: true });
  if (response.status === 404) return [];
  if (response.status >= 400) throw problemError(z, response);
  return [response.data];
};

module.exports = {
  key: op.key,
  noun: op.noun,
  display: op.display,
  operation: {
    inputFields: op.inputFields,
    perform,
    outputFields: op.outputFields,
    sample: op.sample,
  },
};
