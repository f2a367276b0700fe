// A safe, minimal Markdown for messages: *actions* (emphasis), **strong**, `code`,
// "> " quote lines, and line breaks as written. Text from users and models never
// becomes HTML: it is cut into a small tree of tokens, and the tree becomes DOM nodes
// (text nodes, em, strong, code, blockquote) built one by one. Anything else, and every
// delimiter without its partner, stays literal text.
//
// Linear in the length of the text: each delimiter kind is searched for forward at most
// once per match, and once a search for a closer fails, later openers of that kind are
// not searched for again (no closer exists after the first failure point either).

const MAX_DEPTH = 2; // **strong with *emphasis* inside** and the other way round; no deeper

const isSpace = (ch) => ch === undefined || /\s/.test(ch);

// The next closer of `delim` at or after `from`: one preceded by a non-space character
// (so "2 * 3 * 4" stays as written); a single "*" must also stand alone, not be part of
// a "**", so "*a **b** c*" closes at the last star.
function findCloser(text, delim, from) {
  let at = text.indexOf(delim, from);
  while (at !== -1) {
    const before = text[at - 1];
    const single = delim === "*";
    const alone = !single || (before !== "*" && text[at + 1] !== "*");
    if (!isSpace(before) && alone) return at;
    at = text.indexOf(delim, at + 1);
  }
  return -1;
}

// Inline tokens of one block of text: [{type: "text"|"em"|"strong"|"code", ...}].
export function parseInline(text, depth = 0) {
  const tokens = [];
  const exhausted = new Set(); // delimiters with no closer left: literal from here on
  let plain = "";
  const flush = () => { if (plain) { tokens.push({ type: "text", text: plain }); plain = ""; } };
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\\" && i + 1 < text.length && "*`\\>".includes(text[i + 1])) {
      plain += text[i + 1]; // an escaped delimiter is itself
      i += 2;
      continue;
    }
    if (ch === "`" && !exhausted.has("`")) {
      const end = text.indexOf("`", i + 1);
      if (end > i + 1) {
        flush();
        tokens.push({ type: "code", text: text.slice(i + 1, end) });
        i = end + 1;
        continue;
      }
      if (end === -1) exhausted.add("`");
    } else if (ch === "*") {
      const delim = text[i + 1] === "*" ? "**" : "*";
      const opens = !isSpace(text[i + delim.length]) && !(delim === "*" && text[i - 1] === "*");
      if (opens && depth < MAX_DEPTH && !exhausted.has(delim)) {
        const end = findCloser(text, delim, i + delim.length + 1);
        if (end !== -1) {
          flush();
          const inner = text.slice(i + delim.length, end);
          tokens.push({ type: delim === "**" ? "strong" : "em", children: parseInline(inner, depth + 1) });
          i = end + delim.length;
          continue;
        }
        exhausted.add(delim);
      }
      plain += delim;
      i += delim.length;
      continue;
    }
    plain += ch;
    i += 1;
  }
  flush();
  return tokens;
}

const QUOTE = /^ {0,3}> ?/;

// Blocks: runs of quote lines ("> ...") become quotes; other lines stay text with
// their line breaks. Each block's inline markup is its own (a star never pairs
// across a quote's edge).
export function parse(text) {
  const blocks = [];
  let lines = [];
  let quoting = false;
  const close = () => {
    if (!lines.length) return;
    const children = parseInline(lines.join("\n"));
    blocks.push(quoting ? { type: "quote", children } : { type: "text", children });
    lines = [];
  };
  for (const line of String(text ?? "").split("\n")) {
    const isQuote = QUOTE.test(line);
    if (isQuote !== quoting) { close(); quoting = isQuote; }
    lines.push(isQuote ? line.replace(QUOTE, "") : line);
  }
  close();
  return blocks;
}

const TAGS = { em: "em", strong: "strong", code: "code", quote: "blockquote" };

function build(tokens) {
  return tokens.map((token) => {
    if (token.type === "text") return document.createTextNode(token.text);
    const el = document.createElement(TAGS[token.type]);
    if (token.type === "code") el.textContent = token.text;
    else el.append(...build(token.children));
    return el;
  });
}

// The message's text as DOM nodes, ready for `el.replaceChildren(...)`.
export function renderMarkdown(text) {
  const nodes = [];
  for (const block of parse(text)) {
    if (block.type === "quote") {
      const quote = document.createElement("blockquote");
      quote.append(...build(block.children));
      nodes.push(quote);
    } else {
      nodes.push(...build(block.children));
    }
  }
  return nodes;
}
