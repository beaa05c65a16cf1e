// Trains the tiny model's byte-level BPE tokenizer and writes it in Hugging
// Face's format, as Qwen2 and Qwen3 have it (NFC, Qwen2's split regex,
// ByteLevel), with a ChatML chat template:
//
//	node train_tokenizer.js CORPUS.bin.gz OUTDIR    (CORPUS from make_corpus.py)
//
// It writes OUTDIR/tokenizer.json (256 byte tokens, NMERGES merges, then
// <|endoftext|>, <|im_start|>, <|im_end|>) and OUTDIR/tokenizer_config.json.
// The merges are learned (../../tokenizer/merges.js) from the regex pieces of
// every STRIDE-th document of the corpus, pieces seen fewer than MINCOUNT
// times left out, so that training takes a minute or two.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { learnMerges } from "../../tokenizer/merges.js";

const NMERGES = 3000;
const STRIDE = 6;
const MINCOUNT = 3;
const QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// JavaScript has no inline (?i:...): the contractions spelled out.
const QWEN2_JS = QWEN2.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])");
const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const CHAT_TEMPLATE =
  "{%- for message in messages %}\n" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n" +
  "{%- endfor %}\n" +
  "{%- if add_generation_prompt %}\n" +
  "{{- '<|im_start|>assistant\\n' }}\n" +
  "{%- endif %}\n";

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to
// U+0100 upwards in byte order.
function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const m = new Array(256);
  for (const b of bs) m[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (m[b] === undefined) m[b] = String.fromCodePoint(256 + n++);
  return m;
}

const [corpusPath, outDir] = process.argv.slice(2);
if (!corpusPath || !outDir) {
  console.error("usage: node train_tokenizer.js CORPUS.bin.gz OUTDIR");
  process.exit(2);
}
const b2u = bytesToUnicode();
const enc = new TextEncoder();
const docs = zlib.gunzipSync(fs.readFileSync(corpusPath)).toString("utf8").split("\0");
const counts = new Map();
let bytes = 0;
const re = new RegExp(QWEN2_JS, "gu");
for (let i = 0; i < docs.length; i += STRIDE) {
  const text = docs[i].normalize("NFC");
  bytes += text.length;
  for (const m of text.matchAll(re)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
}
const words = [...counts].filter(([, c]) => c >= MINCOUNT).map(([w, c]) => ({ syms: Array.from(enc.encode(w), (b) => b2u[b]), c }));
const vocab = new Map();
for (let b = 0; b < 256; b++) vocab.set(b2u[b], vocab.size);
const merges = learnMerges(words, vocab, NMERGES);

const tokenizer = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: SPECIALS.map((content, i) => ({ id: vocab.size + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: { type: "NFC" },
  pre_tokenizer: {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: QWEN2 }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  },
  post_processor: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
  decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
  model: {
    type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false, ignore_merges: false,
    vocab: Object.fromEntries(vocab), merges,
  },
};
const config = {
  model_max_length: 2048,
  tokenizer_class: "Qwen2Tokenizer",
  bos_token: null,
  eos_token: "<|endoftext|>",
  pad_token: "<|endoftext|>",
  chat_template: CHAT_TEMPLATE,
  added_tokens_decoder: Object.fromEntries(tokenizer.added_tokens.map((t) => [String(t.id), { content: t.content, special: true }])),
};
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "tokenizer.json"), JSON.stringify(tokenizer, null, 1) + "\n");
fs.writeFileSync(path.join(outDir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
console.log(`${merges.length} merges from ${bytes} characters (${words.length} distinct pieces seen ≥ ${MINCOUNT} times); vocab ${vocab.size + SPECIALS.length}: ${SPECIALS.map((s, i) => `${s} ${vocab.size + i}`).join(", ")}`);
