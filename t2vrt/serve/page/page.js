// The page of `t2vrt serve`: submits to POST /v1/videos, lists GET /v1/videos every second, plays finished videos
// from /v1/videos/{id}/content, cancels and deletes with DELETE /v1/videos/{id}. No build step, no external assets.
"use strict";

const shown = new Map(); // id -> the job's element

async function call(method, path, body) {
  const r = await fetch(path, { method, body });
  const data = await r.json();
  if (!r.ok) throw new Error(data.error ? data.error.message : r.statusText);
  return data;
}

document.getElementById("create").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  for (const el of event.target.querySelectorAll("textarea, input")) {
    if (el.value.trim() !== "") form.append(el.name, el.value.trim());
  }
  const error = document.getElementById("error");
  error.textContent = "";
  try {
    render(await call("POST", "/v1/videos", form));
  } catch (e) {
    error.textContent = e.message;
  }
});

function element(job) {
  const div = document.createElement("div");
  div.className = "job";
  div.id = job.id;
  div.innerHTML = `<header><span class="prompt"></span><span>
      <button class="cancel" type="button">Cancel</button>
      <button class="delete" type="button">Delete</button></span></header>
    <div class="meta"></div><progress max="100" value="0"></progress><div class="status"></div>`;
  div.querySelector(".prompt").textContent = job.prompt;
  div.querySelector(".cancel").addEventListener("click", () => remove(job.id, false));
  div.querySelector(".delete").addEventListener("click", () => remove(job.id, true));
  document.getElementById("jobs").prepend(div);
  return div;
}

function render(job) {
  const div = shown.get(job.id) || element(job);
  shown.set(job.id, div);
  div.dataset.status = job.status;
  div.querySelector(".meta").textContent =
    `${job.id} · ${job.size} · ${job.num_frames} frames (${job.seconds} s) · seed ${job.seed}`;
  const bar = div.querySelector("progress");
  bar.value = job.progress;
  const status = div.querySelector(".status");
  status.textContent = `${job.status} ${job.progress} %`;
  status.className = "status" + (job.status === "failed" ? " failed" : "");
  if (job.status === "failed" && job.error) status.textContent += ` (${job.error.code}: ${job.error.message})`;
  const running = job.status === "queued" || job.status === "in_progress";
  div.querySelector(".cancel").hidden = !running;
  div.querySelector(".delete").hidden = running;
  if (job.status === "completed" && !div.querySelector("video")) {
    const video = document.createElement("video");
    video.controls = true;
    video.loop = true;
    video.muted = true;
    video.preload = "auto";
    video.src = `/v1/videos/${job.id}/content`;
    div.append(video);
  }
}

async function remove(id, forget) {
  try {
    await call("DELETE", `/v1/videos/${id}`);
    if (forget) {
      shown.get(id).remove();
      shown.delete(id);
    }
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
  refresh();
}

async function refresh() {
  try {
    const page = await call("GET", "/v1/videos?limit=50&order=desc");
    const ids = new Set(page.data.map((job) => job.id));
    for (const job of page.data.slice().reverse()) render(job);
    for (const [id, div] of shown) {
      if (!ids.has(id)) { div.remove(); shown.delete(id); }
    }
  } catch (e) {
    document.getElementById("error").textContent = e.message;
  }
}

call("GET", "/v1/models").then((m) => { document.getElementById("model").textContent = m.data[0].id; });
refresh();
setInterval(refresh, 1000);
