// Writes goldens.json: for each test tokenizer (qwen2, llama3, gpt2 from
// train.js; llama2sp, mistral, spmunk from train_spm.js; tiny-qwen3, the
// shipped model's, from ../tiny-qwen3/scripts/train_tokenizer.js) and each
// text of corpus.json (and ../tiny-qwen3/long_prompt.txt), the ids that the
// reference implementation, the npm package @huggingface/tokenizers, gives
// without added special tokens (no post-processor template), and its decoding
// of those ids.
//
//	npm install && node goldens.js    (from this directory)
import fs from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const texts = JSON.parse(fs.readFileSync("corpus.json", "utf8"));
texts.push(fs.readFileSync("../tiny-qwen3/long_prompt.txt", "utf8"));
const out = { package: "@huggingface/tokenizers@" + JSON.parse(fs.readFileSync("node_modules/@huggingface/tokenizers/package.json", "utf8")).version, texts, tokenizers: {} };
for (const name of ["qwen2", "llama3", "gpt2", "llama2sp", "mistral", "spmunk", "tiny-qwen3"]) {
  const file = name === "tiny-qwen3" ? "../tiny-qwen3/tokenizer.json" : name + ".json";
  const tok = new Tokenizer(JSON.parse(fs.readFileSync(file, "utf8")), {});
  out.tokenizers[name] = texts.map((t) => {
    const ids = tok.encode(t, { add_special_tokens: false }).ids;
    return { ids, decoded: ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "" };
  });
}
fs.writeFileSync("goldens.json", JSON.stringify(out) + "\n");
