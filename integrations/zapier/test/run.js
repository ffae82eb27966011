'use strict';
// `npm test`: jest with TMPDIR pointing at a fresh temporary directory (jest's cache, Node's
// compile cache and anything else written to the temp dir stay out of the shared /tmp),
// removed afterwards. Arguments are passed on to jest. Ends with one plain
// `N passed, N failed` line from jest's --json results (the CI judge reads that line, not
// jest's own summary); a suite that could not run counts as failed.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'genhook-zapier-jest-'));
const resultsFile = path.join(tmp, 'results.json');
const jest = require.resolve('jest/bin/jest');
const result = spawnSync(
  process.execPath,
  [jest, '--ci', '--json', `--outputFile=${resultsFile}`, ...process.argv.slice(2)],
  {
    cwd: path.join(__dirname, '..'),
    stdio: 'inherit',
    env: { ...process.env, TMPDIR: tmp, NO_UPDATE_NOTIFIER: '1' },
  },
);
let summary = '0 passed, 1 failed (jest wrote no results)';
try {
  const r = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
  const failed = r.numFailedTests + r.numRuntimeErrorTestSuites;
  const skipped = r.numPendingTests + r.numTodoTests;
  summary = `${r.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`;
} catch (err) {
  // keep the failure summary
}
fs.rmSync(tmp, { recursive: true, force: true });
console.log(summary);
if (result.error) throw result.error;
process.exit(result.status === null ? 1 : result.status);
