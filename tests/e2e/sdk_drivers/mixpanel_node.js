// Drives the official `mixpanel` Node client with its default options (verbose off, so it
// expects the legacy `1` reply): `node mixpanel_node.js HOST PORT TOKEN` with a JSON array of
// calls on stdin, each {"call": "track"|"import"|"import_batch"|"people.set"|"groups.set",
// "args": [...]}, made one after another; prints {"errors": [...]}, one entry per error the
// SDK reported to a callback.
const Mixpanel = require('mixpanel');

const [host, port, token] = process.argv.slice(2);
const mixpanel = Mixpanel.init(token, { host, port: Number(port), protocol: 'http', key: token });
const calls = {
  track: (args, done) => mixpanel.track(...args, done),
  import: (args, done) => mixpanel.import(...args, done),
  import_batch: (args, done) => mixpanel.import_batch(...args, done),
  'people.set': (args, done) => mixpanel.people.set(...args, done),
  'groups.set': (args, done) => mixpanel.groups.set(...args, done),
};

let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
  const errors = [];
  for (const { call, args } of JSON.parse(input)) {
    await new Promise((resolve) => calls[call](args, (error) => {
      const list = Array.isArray(error) ? error : error ? [error] : [];
      for (const e of list) errors.push(`${call}: ${e && e.message ? e.message : String(e)}`);
      resolve();
    }));
  }
  process.stdout.write(JSON.stringify({ errors }));
});
