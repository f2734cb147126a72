// ANSI escape sequences in log lines, rendered safely.
//
// SGR sequences (colours, bold, ...) become <span> elements with classes; every other escape
// sequence (cursor movement, OSC titles and hyperlinks, DCS, ...) and every other control
// character is dropped. Text only ever reaches the page through textContent.

// One token: a CSI sequence, an OSC / DCS / SOS / PM / APC string, or any other escape.
const ESCAPES =
  /\x1b\[([0-?]*)[ -/]*([@-~])|\x9b([0-?]*)[ -/]*([@-~])|\x1b[\]PX^_][\s\S]*?(?:\x07|\x1b\\|\x9c|$)|[\x9d\x90\x98\x9e\x9f][\s\S]*?(?:\x07|\x1b\\|\x9c|$)|\x1b[ -/]*[0-~]?/g;
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

// The 16 colours as xterm draws them, to map 256-colour and RGB requests to the nearest class.
const PALETTE = [
  [0, 0, 0], [205, 0, 0], [0, 205, 0], [205, 205, 0], [0, 0, 238], [205, 0, 205], [0, 205, 205],
  [229, 229, 229], [127, 127, 127], [255, 0, 0], [0, 255, 0], [255, 255, 0], [92, 92, 255],
  [255, 0, 255], [0, 255, 255], [255, 255, 255],
];
const CUBE = [0, 95, 135, 175, 215, 255];

function nearest(rgb) {
  let best = 0;
  let bestDistance = Infinity;
  PALETTE.forEach((colour, index) => {
    const distance = colour.reduce((sum, value, i) => sum + (value - rgb[i]) ** 2, 0);
    if (distance < bestDistance) {
      best = index;
      bestDistance = distance;
    }
  });
  return best;
}

function colour256(n) {
  if (!Number.isInteger(n) || n < 0 || n > 255) return null;
  if (n < 16) return n;
  if (n < 232) {
    const i = n - 16;
    return nearest([CUBE[Math.floor(i / 36)], CUBE[Math.floor(i / 6) % 6], CUBE[i % 6]]);
  }
  const grey = 8 + 10 * (n - 232);
  return nearest([grey, grey, grey]);
}

function freshState() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false,
           inverse: false, strike: false };
}

function applySgr(state, params) {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i += 1) {
    const code = codes[i];
    if (code === 0) Object.assign(state, freshState());
    else if (code === 1) state.bold = true;
    else if (code === 2) state.dim = true;
    else if (code === 3) state.italic = true;
    else if (code === 4) state.underline = true;
    else if (code === 7) state.inverse = true;
    else if (code === 9) state.strike = true;
    else if (code === 21 || code === 22) { state.bold = false; state.dim = false; }
    else if (code === 23) state.italic = false;
    else if (code === 24) state.underline = false;
    else if (code === 27) state.inverse = false;
    else if (code === 29) state.strike = false;
    else if (code >= 30 && code <= 37) state.fg = code - 30;
    else if (code === 39) state.fg = null;
    else if (code >= 40 && code <= 47) state.bg = code - 40;
    else if (code === 49) state.bg = null;
    else if (code >= 90 && code <= 97) state.fg = code - 90 + 8;
    else if (code >= 100 && code <= 107) state.bg = code - 100 + 8;
    else if (code === 38 || code === 48) {
      let colour = null;
      if (codes[i + 1] === 5) {
        colour = colour256(codes[i + 2]);
        i += 2;
      } else if (codes[i + 1] === 2) {
        const rgb = codes.slice(i + 2, i + 5);
        if (rgb.length === 3 && rgb.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
          colour = nearest(rgb);
        }
        i += 4;
      }
      if (code === 38) state.fg = colour;
      else state.bg = colour;
    }
  }
}

function classesOf(state) {
  const classes = [];
  let { fg, bg } = state;
  if (state.inverse) [fg, bg] = [bg ?? "inv", fg ?? "inv"];
  if (fg !== null) classes.push(`ansi-fg-${fg}`);
  if (bg !== null) classes.push(`ansi-bg-${bg}`);
  for (const flag of ["bold", "dim", "italic", "underline", "strike"]) {
    if (state[flag]) classes.push(`ansi-${flag}`);
  }
  return classes;
}

/** The visible segments of one log line: [{text, classes}], escapes applied and removed. */
export function parseAnsi(line) {
  const segments = [];
  const state = freshState();
  const push = (text) => {
    const clean = text.replace(CONTROLS, "");
    if (clean) segments.push({ text: clean, classes: classesOf(state) });
  };
  let last = 0;
  for (const match of line.matchAll(ESCAPES)) {
    push(line.slice(last, match.index));
    last = match.index + match[0].length;
    const params = match[1] ?? match[3];
    const final = match[2] ?? match[4];
    if (final === "m" && params !== undefined && /^[0-9;:]*$/.test(params)) applySgr(state, params);
  }
  push(line.slice(last));
  return segments;
}

/** Append one rendered log line to `parent`, as text nodes and classed spans only. */
export function appendAnsi(parent, line) {
  for (const segment of parseAnsi(line)) {
    if (segment.classes.length === 0) {
      parent.append(document.createTextNode(segment.text));
    } else {
      const span = document.createElement("span");
      span.className = segment.classes.join(" ");
      span.textContent = segment.text;
      parent.append(span);
    }
  }
}
