'use strict';
// The models genhook offers, for the Model dropdowns (the generated fields' `dynamic`
// points here). Hidden: a Zap cannot start from it.
const { listModels: op } = require('../generated/operations');
const { requestOperation } = require('../lib/genhook');

const perform = async (z, bundle) => {
  const response = await requestOperation(z, bundle, op, {});
  return response.data.data.map((model) => ({
    ...model,
    name: model.available === false ? `${model.name} (no provider configured)` : model.name,
  }));
};

module.exports = {
  key: op.key,
  noun: op.noun,
  display: { ...op.display, hidden: true },
  operation: {
    perform,
    sample: op.sample,
  },
};
