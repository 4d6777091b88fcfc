// Drives the official @segment/analytics-node client: `node segment_node.js HOST WRITE_KEY`
// with a JSON array of messages on stdin ({"type": "track"|"identify"|"group", ...}); prints
// {"errors": [...], "http": [...]} with every error the SDK emitted and each request's status.
const { Analytics } = require('@segment/analytics-node');

const [host, writeKey] = process.argv.slice(2);
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
  const analytics = new Analytics({ writeKey, host, flushAt: 20, flushInterval: 50, maxRetries: 2 });
  const errors = [];
  const http = [];
  analytics.on('error', (err) => errors.push(JSON.stringify({ code: err.code, reason: String(err.reason) })));
  analytics.on('http_request', (request) => http.push(request.url));
  for (const message of JSON.parse(input)) {
    const { type, ...params } = message;
    analytics[type](params);
  }
  await analytics.closeAndFlush({ timeout: 20000 });
  process.stdout.write(JSON.stringify({ errors, http }));
});
