// Validate glTF / glb files with the Khronos glTF-Validator (npm "gltf-validator").
// Usage: node tools/validate_gltf.mjs FILE...   Prints one JSON line per file:
//   {"file", "errors", "warnings", "infos", "hints", "messages": [first issues...]}
// EXT_mesh_features / EXT_structural_metadata are 3D Tiles extensions the validator does
// not know: its UNSUPPORTED_EXTENSION notice is reported as is (severity unchanged).
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

let failed = false;
for (const file of process.argv.slice(2)) {
  const data = new Uint8Array(await readFile(file));
  const report = await validator.validateBytes(data, { uri: file, maxIssues: 200 });
  const issues = report.issues;
  const messages = issues.messages
    .filter((m) => m.severity <= 1)
    .slice(0, 20)
    .map((m) => `${m.code} ${m.pointer ?? ""}: ${m.message}`);
  if (issues.numErrors || issues.numWarnings) failed = true;
  console.log(JSON.stringify({
    file, errors: issues.numErrors, warnings: issues.numWarnings,
    infos: issues.numInfos, hints: issues.numHints, messages,
  }));
}
process.exit(failed ? 1 : 0);
