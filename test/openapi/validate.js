// test/openapi/validate.js: validate OpenAPI documents with swagger-parser
// and print TAP.  Usage: node validate.js [--invalid] file.json ...
// With --invalid the files must be rejected (so the check itself can fail).
'use strict';
const fs = require('fs');
const SwaggerParser = require('@apidevtools/swagger-parser');

async function main() {
  const args = process.argv.slice(2);
  const checks = [];
  let expectInvalid = false;
  for (const a of args) {
    if (a === '--invalid') { expectInvalid = true; continue; }
    if (a === '--valid') { expectInvalid = false; continue; }
    checks.push({ file: a, expectInvalid });
  }
  console.log(`1..${checks.length}`);
  let failed = 0;
  for (const [i, c] of checks.entries()) {
    let doc;
    let error = null;
    try {
      doc = JSON.parse(fs.readFileSync(c.file, 'utf8'));
      await SwaggerParser.validate(doc);
    } catch (e) {
      error = e;
    }
    const ok = c.expectInvalid ? error !== null : error === null;
    const what = c.expectInvalid ? 'is rejected' : 'is a valid OpenAPI document';
    if (ok) {
      const paths = doc && doc.paths ? Object.keys(doc.paths).length : 0;
      console.log(`ok ${i + 1} - ${c.file} ${what}` + (c.expectInvalid ? '' : ` (${paths} paths)`));
    } else {
      failed++;
      console.log(`not ok ${i + 1} - ${c.file} ${what}`);
      console.log(`# ${error ? String(error.message).split('\n').join('\n# ') : 'no error was raised'}`);
    }
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((e) => { console.log(`not ok 1 - ${e.message}`); process.exitCode = 1; });
