'use strict';
const { baseUrl } = require('./lib/genhook');

const test = async (z, bundle) => {
  const { signingSecret } = bundle.authData || {};
  if (signingSecret !== undefined && !/^whsec_[A-Za-z0-9+/=]+$/.test(String(signingSecret).trim())) {
    throw new z.errors.Error('The Signing Secret must be your account\'s whsec_… secret.', 'InvalidSigningSecret', 400);
  }
  const response = await z.request({ url: `${baseUrl(bundle)}/v1/account` });
  return response.data;
};

module.exports = {
  type: 'custom',
  fields: [
    {
      key: 'baseUrl',
      label: 'Genhook URL',
      type: 'string',
      required: true,
      helpText:
        'The address of your genhook server, e.g. `https://genhook.example.com`. It must be reachable from Zapier over public https for the webhooks to come back.',
    },
    {
      key: 'apiKey',
      label: 'API Key',
      type: 'password',
      required: true,
      helpText: 'Your account\'s API key (`gh_…`), from signup.',
    },
    {
      key: 'signingSecret',
      label: 'Signing Secret',
      type: 'password',
      required: true,
      helpText:
        'Your account\'s webhook signing secret (`whsec_…`), from signup or `POST /v1/account/rotate-signing-secret`. "Generate Video" uses it to check that the finished-video webhook really comes from genhook.',
    },
  ],
  test,
  connectionLabel: (z, bundle) => (bundle.inputData && bundle.inputData.email) || 'genhook',
};
