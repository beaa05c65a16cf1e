// Encodes text with a tokenizer.json through the reference implementation,
// the npm package @huggingface/tokenizers (installed by `npm install` in
// testdata/tokenizer), for the training and golden scripts:
//
//	node encode.js TOKENIZER.json CORPUS.bin.gz OUT.bin
//	    every document of make_corpus.py's corpus, each followed by
//	    <|endoftext|>, as little-endian uint16 ids
//	node encode.js TOKENIZER.json -texts < TEXTS.json
//	    a JSON list of strings in, the JSON list of their id lists out
import fs from "node:fs";
import { createRequire } from "node:module";
import zlib from "node:zlib";

const require = createRequire(new URL("../../tokenizer/package.json", import.meta.url));
const { Tokenizer } = require("@huggingface/tokenizers");

const [tokPath, src, out] = process.argv.slice(2);
if (!tokPath || !src || (src !== "-texts" && !out)) {
  console.error("usage: node encode.js TOKENIZER.json CORPUS.bin.gz OUT.bin | node encode.js TOKENIZER.json -texts < TEXTS.json");
  process.exit(2);
}
const json = JSON.parse(fs.readFileSync(tokPath, "utf8"));
const tok = new Tokenizer(json, {});
const encode = (t) => tok.encode(t, { add_special_tokens: false }).ids;
if (src === "-texts") {
  const texts = JSON.parse(fs.readFileSync(0, "utf8"));
  process.stdout.write(JSON.stringify(texts.map(encode)) + "\n");
} else {
  const eot = json.added_tokens.find((t) => t.content === "<|endoftext|>").id;
  const docs = zlib.gunzipSync(fs.readFileSync(src)).toString("utf8").split("\0").filter((d) => d.length > 0);
  const ids = [];
  for (const d of docs) {
    for (const id of encode(d)) ids.push(id);
    ids.push(eot);
  }
  fs.writeFileSync(out, Buffer.from(Uint16Array.from(ids).buffer));
  console.log(`${docs.length} documents, ${ids.length} tokens -> ${out}`);
}
