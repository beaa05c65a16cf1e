// Writes goldens.json: for each case of cases.json (a template of templates/,
// or a short one of its own that exercises one feature, and its variables),
// the text that the reference implementation, the npm
// package @huggingface/jinja, renders, or the exception it raises.
//
//	npm install && node goldens.js    (from this directory)
import fs from "node:fs";
import { Template } from "@huggingface/jinja";

const cases = JSON.parse(fs.readFileSync("cases.json", "utf8"));
const out = { package: "@huggingface/jinja@" + JSON.parse(fs.readFileSync("node_modules/@huggingface/jinja/package.json", "utf8")).version, results: {} };
for (const c of cases) {
  const src = c.source ?? fs.readFileSync("templates/" + c.template + ".jinja", "utf8");
  try {
    out.results[c.name] = { text: new Template(src).render(c.vars) };
  } catch (e) {
    out.results[c.name] = { error: String(e.message) };
  }
}
fs.writeFileSync("goldens.json", JSON.stringify(out, null, 1) + "\n");
