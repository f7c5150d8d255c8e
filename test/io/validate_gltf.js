// Validate one glTF/GLB file with the Khronos glTF validator and print its report as JSON.
// Usage: node test/io/validate_gltf.js FILE.glb   (needs `npm ci` at the repository root)
'use strict';

const fs = require('fs');
const path = require('path');
const validator = require('gltf-validator');

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate_gltf.js FILE.glb');
  process.exit(2);
}
const bytes = new Uint8Array(fs.readFileSync(file));
validator
  .validateBytes(bytes, { uri: path.basename(file), maxIssues: 0 })
  .then((report) => {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  })
  .catch((error) => {
    console.error('gltf-validator failed: ' + error);
    process.exit(1);
  });
