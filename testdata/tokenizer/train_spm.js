// Trains the small SentencePiece-style BPE vocabulary behind the Metaspace
// test tokenizers and writes them in Hugging Face's tokenizer.json format:
//
//	node train_spm.js    (from this directory; reads /usr/local/go/src and corpus.json)
//
// The vocabulary is that of Llama 2, Mistral and TinyLlama in small:
// <unk>, <s>, </s>, the 256 byte tokens <0x00>…<0xFF>, the characters of the
// training text below U+0250 and "▁", then the merged tokens. Characters
// outside it (CJK, emoji, combining marks, right-to-left scripts) take the
// byte fallback or <unk>. Words break before each run of "▁", so that merges
// such as "▁ ▁" exist and whitespace runs have tokens of their own.
//
// llama2sp.json has Llama 2's legacy normalizer (Prepend "▁", Replace " " by
// "▁") and no pre-tokenizer; mistral.json the Metaspace pre-tokenizer
// (prepend_scheme first, split false); both decode with Replace,
// ByteFallback, Fuse, Strip. spmunk.json has no byte fallback (unknown
// characters are one fused <unk>), Metaspace with prepend_scheme always and
// the Metaspace decoder.
import fs from "node:fs";
import path from "node:path";
import { learnMerges } from "./merges.js";

const NMERGES = 1500;
const S = "\u2581";

let text = "";
for (const dir of ["strings", "bufio", "unicode/utf8"]) {
  const d = path.join("/usr/local/go/src", dir);
  for (const f of fs.readdirSync(d).sort()) if (f.endsWith(".go")) text += fs.readFileSync(path.join(d, f), "utf8");
}
const corpus = JSON.parse(fs.readFileSync("corpus.json", "utf8"));
for (let i = 0; i < 20; i++) text += corpus.join("\n");
text = S + text.replaceAll(" ", S);

const counts = new Map();
for (const w of text.split(new RegExp(`(?<!${S})(?=${S})`, "u"))) counts.set(w, (counts.get(w) ?? 0) + 1);

const vocab = new Map([["<unk>", 0], ["<s>", 1], ["</s>", 2]]);
for (let b = 0; b < 256; b++) vocab.set(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, vocab.size);
const chars = new Map();
for (const [w, c] of counts) for (const ch of w) if (ch === S || ch.codePointAt(0) < 0x250) chars.set(ch, (chars.get(ch) ?? 0) + c);
for (const [ch] of [...chars].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))) if (!vocab.has(ch)) vocab.set(ch, vocab.size);

const words = [...counts].map(([w, c]) => ({ syms: Array.from(w), c }));
const merges = learnMerges(words, vocab, NMERGES, (x, y) => vocab.has(x) && vocab.has(y));

const special = (content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const added = [special("<unk>", 0), special("<s>", 1), special("</s>", 2)];
for (const t of ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) added.push(special(t, vocab.size + added.length - 3));
const metaspace = (scheme) => ({ type: "Metaspace", replacement: S, prepend_scheme: scheme, split: false });
const fallbackDecoder = {
  type: "Sequence",
  decoders: [
    { type: "Replace", pattern: { String: S }, content: " " },
    { type: "ByteFallback" },
    { type: "Fuse" },
    { type: "Strip", content: " ", start: 1, stop: 0 },
  ],
};
function tokenizer(normalizer, preTokenizer, decoder, byteFallback) {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer,
    pre_tokenizer: preTokenizer,
    post_processor: null,
    decoder,
    model: {
      type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: byteFallback, ignore_merges: false,
      vocab: Object.fromEntries(vocab), merges,
    },
  };
}
const legacy = { type: "Sequence", normalizers: [{ type: "Prepend", prepend: S }, { type: "Replace", pattern: { String: " " }, content: S }] };
const write = (name, t) => fs.writeFileSync(name, JSON.stringify(t, null, 1) + "\n");
write("llama2sp.json", tokenizer(legacy, null, fallbackDecoder, true));
write("mistral.json", tokenizer(null, metaspace("first"), fallbackDecoder, true));
write("spmunk.json", tokenizer(null, metaspace("always"), metaspace("always"), false));
console.log(`${merges.length} merges, vocab ${vocab.size}, ${words.length} distinct words`);
