// learnMerges: the BPE training loop both train scripts use. words are
// {syms, c} (a word's symbols and its count); each round merges the most
// frequent adjacent pair that canPair allows (ties: the smaller pair
// string), adds it to vocab (symbol -> id) and rewrites the words. Returns
// the merges in order.
export function learnMerges(words, vocab, nmerges, canPair = () => true) {
  const merges = [];
  while (merges.length < nmerges) {
    const pairs = new Map();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        if (!canPair(w.syms[i], w.syms[i + 1])) continue;
        const k = w.syms[i] + " " + w.syms[i + 1];
        pairs.set(k, (pairs.get(k) ?? 0) + w.c);
      }
    }
    let best = null, bc = 0;
    for (const [k, c] of pairs) if (c > bc || (c === bc && k < best)) { best = k; bc = c; }
    if (best === null) break;
    const [a, b] = best.split(" ");
    merges.push([a, b]);
    vocab.set(a + b, vocab.size);
    for (const w of words) {
      const s = w.syms, out = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { out.push(a + b); i++; } else out.push(s[i]);
      }
      w.syms = out;
    }
  }
  return merges;
}
