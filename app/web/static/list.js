// The build list: keep the table fresh, and upload a project zip.
import { csrfToken, every, fetchFragment, formatSize, localizeTimes, swapIn } from "./common.js";

localizeTimes(document);

every(3000, async () => {
  const current = document.getElementById("build-list");
  const fresh = await fetchFragment(current.dataset.refresh, "build-list");
  if (fresh) swapIn(fresh);
});

const form = document.getElementById("upload-form");
const input = document.getElementById("source");
const zone = document.getElementById("dropzone");
const chosenLabel = document.getElementById("dz-file");
const errorBox = document.getElementById("upload-error");
const progress = document.getElementById("upload-progress");
const button = document.getElementById("upload-button");
const OPTION_FIELDS = ["tag", "python_version", "test_command", "context_dir", "dockerfile", "build_args"];
let chosen = null;

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function choose(file) {
  chosen = file;
  chosenLabel.textContent = `${file.name} · ${formatSize(file.size)}`;
  chosenLabel.hidden = false;
  zone.classList.add("has-file");
  showError("");
}

function busy(on) {
  button.disabled = on;
  button.textContent = on ? "Uploading…" : "Build image";
  progress.hidden = !on;
  if (on) progress.value = 0;
}

input.addEventListener("change", () => {
  if (input.files.length > 0) choose(input.files[0]);
});

for (const type of ["dragenter", "dragover"]) {
  zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
}
zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("dragging");
  const files = event.dataTransfer ? event.dataTransfer.files : null;
  if (!files || files.length !== 1) {
    showError("Drop one .zip file.");
    return;
  }
  choose(files[0]);
});
// A file dropped beside the zone must not make the browser navigate away to open it.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!chosen) {
    showError("Choose or drop a project .zip first.");
    return;
  }
  if (!/\.zip$/i.test(chosen.name)) {
    showError("The project must be a .zip archive.");
    return;
  }
  if (chosen.size > Number(form.dataset.maxBytes)) {
    showError(`The zip is over the ${formatSize(Number(form.dataset.maxBytes))} limit.`);
    return;
  }
  const data = new FormData();
  for (const name of OPTION_FIELDS) {
    const value = form.elements[name].value.trim();
    if (value) data.append(name, value);
  }
  data.append("run_tests", form.elements.run_tests.checked ? "true" : "false");
  data.append("source", chosen, chosen.name);

  // XMLHttpRequest rather than fetch(): it reports upload progress.
  const request = new XMLHttpRequest();
  request.open("POST", "/ui/builds");
  request.setRequestHeader("X-CSRF-Token", csrfToken());
  request.setRequestHeader("Accept", "application/json");
  request.responseType = "json";
  request.upload.addEventListener("progress", (progressEvent) => {
    if (progressEvent.lengthComputable) {
      progress.value = (100 * progressEvent.loaded) / progressEvent.total;
    }
  });
  request.addEventListener("load", () => {
    const body = request.response;
    if (request.status === 202 && body && typeof body.id === "string") {
      window.location.assign(`/builds/${encodeURIComponent(body.id)}`);
      return;
    }
    if (request.status === 401) {
      window.location.assign("/login");
      return;
    }
    busy(false);
    const detail = body && typeof body.detail === "string" ? body.detail : "";
    showError(detail || `The upload failed (HTTP ${request.status}).`);
  });
  request.addEventListener("error", () => {
    busy(false);
    showError("The upload did not reach the server; check the connection and try again.");
  });
  showError("");
  busy(true);
  request.send(data);
});
