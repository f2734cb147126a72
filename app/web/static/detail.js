// One build: follow its log over server-sent events, keep its summary fresh, show its Dockerfile.
import { appendAnsi } from "./ansi.js";
import { every, fetchFragment, localizeTimes, swapIn } from "./common.js";

const root = document.getElementById("build");
const logBox = document.getElementById("log");
const followButton = document.getElementById("follow");
const stateLabel = document.getElementById("log-state");
const STREAMS = ["build", "test", "system"];
const BOTTOM_SLACK = 24;

localizeTimes(document);

// --- The log -----------------------------------------------------------------------------------

let following = true;
let lastLine = 0;
let pending = [];
let flushScheduled = false;

function atBottom() {
  return logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight <= BOTTOM_SLACK;
}

function scrollToEnd() {
  logBox.scrollTop = logBox.scrollHeight;
}

// Scrolling up stops the auto-scroll; scrolling back to the bottom resumes it.
logBox.addEventListener("scroll", () => {
  following = atBottom();
  followButton.hidden = following;
});
followButton.addEventListener("click", () => {
  following = true;
  followButton.hidden = true;
  scrollToEnd();
});

function lineElement(number, stream, text) {
  const line = document.createElement("div");
  line.className = `line stream-${stream}`;
  const gutter = document.createElement("span");
  gutter.className = "ln";
  gutter.textContent = String(number);
  const body = document.createElement("span");
  body.className = "txt";
  appendAnsi(body, text);
  line.append(gutter, body);
  return line;
}

function flush() {
  flushScheduled = false;
  if (pending.length === 0) return;
  const batch = document.createDocumentFragment();
  for (const [number, stream, text] of pending) batch.append(lineElement(number, stream, text));
  pending = [];
  const placeholder = document.getElementById("log-empty");
  if (placeholder) placeholder.remove();
  logBox.append(batch);
  logBox.dataset.lines = String(lastLine);
  if (following) scrollToEnd();
}

function receive(stream, event) {
  const number = Number(event.lastEventId);
  // EventSource resumes after Last-Event-ID; never show a line twice all the same.
  if (!Number.isInteger(number) || number <= lastLine) return;
  lastLine = number;
  pending.push([number, stream, event.data]);
  if (!flushScheduled) {
    flushScheduled = true;
    requestAnimationFrame(flush);
  }
}

function setState(state, text) {
  stateLabel.dataset.state = state;
  stateLabel.textContent = text;
}

const source = new EventSource(root.dataset.events);
for (const stream of STREAMS) source.addEventListener(stream, (event) => receive(stream, event));
source.addEventListener("open", () => setState("live", "live"));
source.addEventListener("end", () => {
  source.close();
  flush();
  setState("ended", "complete");
  if (logBox.querySelector(".line") === null) {
    const placeholder = document.getElementById("log-empty");
    if (placeholder) placeholder.textContent = "This build wrote no log.";
  }
  summary.now();
});
source.addEventListener("error", () => {
  if (source.readyState === EventSource.CLOSED) setState("closed", "disconnected; reload to retry");
  else setState("reconnecting", "reconnecting…");
});

// --- The Dockerfile ----------------------------------------------------------------------------

const panel = document.getElementById("dockerfile-panel");
const dockerfileBox = document.getElementById("dockerfile");
const INSTRUCTION = /^(\s*)([A-Za-z]+)(\s.*)?$/;
const KEYWORDS = new Set([
  "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
  "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "AS",
]);
let dockerfileShown = false;

function showDockerfile(text) {
  const lines = document.createDocumentFragment();
  for (const line of text.split("\n")) {
    const row = document.createElement("span");
    row.className = "df-line";
    const match = INSTRUCTION.exec(line);
    if (line.trimStart().startsWith("#")) {
      row.classList.add("df-comment");
      row.textContent = line;
    } else if (match && KEYWORDS.has(match[2].toUpperCase())) {
      const keyword = document.createElement("span");
      keyword.className = "df-keyword";
      keyword.textContent = match[2];
      row.append(document.createTextNode(match[1]), keyword, document.createTextNode(match[3] || ""));
    } else {
      row.textContent = line;
    }
    lines.append(row, document.createTextNode("\n"));
  }
  dockerfileBox.replaceChildren(lines);
  dockerfileShown = true;
}

async function loadDockerfile() {
  if (dockerfileShown) return;
  const response = await fetch(root.dataset.dockerfile, { cache: "no-store" });
  if (response.ok) showDockerfile(await response.text());
  else if (response.status === 404) dockerfileBox.textContent = "Chosen when the build starts.";
  else dockerfileBox.textContent = `Could not load the Dockerfile (HTTP ${response.status}).`;
}

panel.addEventListener("toggle", () => {
  if (panel.open) loadDockerfile();
});

// --- The summary -------------------------------------------------------------------------------

const summary = every(2000, async () => {
  const fresh = await fetchFragment(root.dataset.summary, "summary");
  if (!fresh) return false;
  swapIn(fresh);
  if (panel.open) loadDockerfile();
  return fresh.dataset.terminal !== "true";
});
if (document.getElementById("summary").dataset.terminal === "true") summary.stop();
