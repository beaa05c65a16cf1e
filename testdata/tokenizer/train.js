// Trains the small byte-level BPE vocabulary behind the test tokenizers and
// writes them in Hugging Face's tokenizer.json format:
//
//	node train.js    (from this directory; reads /usr/local/go/src and corpus.json)
//
// qwen2.json has Qwen2's NFC normalizer and split regex, llama3.json
// Llama 3's regex (\p{N}{1,3}, no normalizer, ignore_merges) and gpt2.json
// GPT-2's ByteLevel pre-tokenizer with its own regex. All share one vocabulary
// and merge list. Training text: a few Go standard-library packages (BSD
// licence, © The Go Authors) and the test corpus.
import fs from "node:fs";
import path from "node:path";
import { learnMerges } from "./merges.js";

const NMERGES = 3000;
const QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

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
const b2u = bytesToUnicode();
const enc = new TextEncoder();
const mapped = (s) => Array.from(enc.encode(s), (b) => b2u[b]);

let text = "";
for (const dir of ["strings", "fmt", "bufio", "unicode/utf8", "sort"]) {
  const d = path.join("/usr/local/go/src", dir);
  for (const f of fs.readdirSync(d).sort()) if (f.endsWith(".go")) text += fs.readFileSync(path.join(d, f), "utf8");
}
const corpus = JSON.parse(fs.readFileSync("corpus.json", "utf8"));
for (let i = 0; i < 20; i++) text += corpus.join("\n");
text = text.normalize("NFC");

// Words by count. A word is a stretch of text up to the next space, not a
// regex piece, so that merges cross the pieces' boundaries ("Ċa", "();",
// "123", "'S"): then a pre-tokenizer that splits wrongly gives other ids.
const counts = new Map();
for (const w of text.split(/(?= )/u)) counts.set(w, (counts.get(w) ?? 0) + 1);
const words = [...counts].map(([w, c]) => ({ syms: mapped(w), c }));

const vocab = new Map();
for (let b = 0; b < 256; b++) vocab.set(b2u[b], vocab.size);
const merges = learnMerges(words, vocab, NMERGES);

// Tokens that merges do not build, for ignore_merges (Llama 3): a few of
// the corpus's regex pieces that BPE splits into three or more tokens.
const whole = [];
for (const m of corpus.join("\n").matchAll(new RegExp(LLAMA3.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"), "gu"))) {
  const t = mapped(m[0]).join("");
  if (m[0].length >= 5 && !vocab.has(t) && !whole.includes(t) && whole.length < 12) whole.push(t);
}

function added(names, base) {
  return names.map((content, i) => ({ id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
}
function tokenizer(normalizer, preTokenizer, ignoreMerges, specials) {
  const v = new Map(vocab);
  if (ignoreMerges) for (const t of whole) v.set(t, v.size);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added(specials, v.size),
    normalizer,
    pre_tokenizer: preTokenizer,
    post_processor: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: ignoreMerges,
      vocab: Object.fromEntries(v), merges,
    },
  };
}
const split = (pattern) => ({
  type: "Sequence",
  pretokenizers: [
    { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
  ],
});
const write = (name, t) => fs.writeFileSync(name, JSON.stringify(t, null, 1) + "\n");
write("qwen2.json", tokenizer({ type: "NFC" }, split(QWEN2), false, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]));
write("llama3.json", tokenizer(null, split(LLAMA3), true, ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]));
write("gpt2.json", tokenizer(null, { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }, false, ["<|endoftext|>", "<|endoftext|><|endoftext|>"]));
console.log(`${merges.length} merges, vocab ${vocab.size}, ${words.length} distinct words; for ignore_merges: ${whole.join(" ")}`);
