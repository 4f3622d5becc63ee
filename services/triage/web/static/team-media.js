// The team page's video on the phone: an answer recorded in the page (MediaRecorder, at
// the bitrate the server names), and a recording or chosen video larger than the server's
// target shrunk before it crosses the camp link (WebCodecs through the vendored
// mediabunny, where the browser has it; elsewhere the original goes up). team.js sends
// what this gives it (TA.teamMedia).
(function () {
  "use strict";

  const TA = window.TA;
  const cards = document.getElementById("cards");
  if (!TA || !cards) return;

  const TARGET_KBPS = Number(cards.dataset.targetKbps) || 2000;
  const MAX_LONG = Number(cards.dataset.maxLong) || 1280;

  // --- shrinking on the phone (WebCodecs, through the vendored mediabunny) -------------------

  // Seconds and picture size of a video, as this browser plays it (0s when it cannot).
  function measure(blob) {
    return new Promise((resolve) => {
      const video = document.createElement("video");
      video.preload = "metadata";
      video.muted = true;
      const url = URL.createObjectURL(blob);
      let settled = false;
      const finish = (seconds) => {
        if (settled) return;
        settled = true;
        const long = Math.max(video.videoWidth, video.videoHeight);
        // Detach before revoking: a video still loading from a revoked URL logs
        // ERR_FILE_NOT_FOUND (seen on a busy machine).
        video.onerror = null;
        video.removeAttribute("src");
        video.load();
        URL.revokeObjectURL(url);
        resolve({ seconds, long });
      };
      video.onloadedmetadata = () => {
        if (Number.isFinite(video.duration)) return finish(video.duration);
        video.currentTime = 1e9; // MediaRecorder WebM: no duration until seeked to the end
        video.ontimeupdate = () => finish(Number.isFinite(video.duration) ? video.duration : 0);
      };
      video.onerror = () => finish(0);
      setTimeout(() => finish(0), 5000);
      video.src = url;
    });
  }

  // The recording as the server asks for it: its bitrate and size, or the original when
  // it is small enough already or this browser cannot re-encode (no WebCodecs).
  async function shrink(blob, report) {
    if (typeof VideoEncoder === "undefined") return blob;
    const { seconds, long: shown } = await measure(blob);
    if (!(seconds > 0)) return blob; // this browser cannot play it: the server will tell
    const kbps = (blob.size * 8) / seconds / 1000;
    if (kbps <= TARGET_KBPS * 1.15 && shown <= MAX_LONG) return blob; // small enough already
    let mb = null;
    try {
      mb = await import(asset("vendor/mediabunny.min.mjs"));
    } catch (_) {
      return blob; // not reachable (offline, first visit): the original goes up
    }
    const input = new mb.Input({ source: new mb.BlobSource(blob), formats: mb.ALL_FORMATS });
    const track = await input.getPrimaryVideoTrack();
    if (!track) return blob;
    const width = track.displayWidth;
    const height = track.displayHeight;
    const long = Math.max(width, height);
    if (kbps <= TARGET_KBPS * 1.15 && long <= MAX_LONG) return blob;
    if (!(await mb.canEncodeVideo("avc"))) return blob;
    const scale = Math.min(1, MAX_LONG / long);
    const even = (n) => Math.max(2, Math.round((n * scale) / 2) * 2);
    const audioKbps = 64;
    const output = new mb.Output({
      format: new mb.Mp4OutputFormat({ fastStart: "in-memory" }),
      target: new mb.BufferTarget(),
    });
    const conversion = await mb.Conversion.init({
      input,
      output,
      video: {
        codec: "avc",
        width: even(width),
        height: even(height),
        fit: "contain",
        bitrate: Math.max(150, TARGET_KBPS - audioKbps) * 1000,
      },
      audio: { codec: "opus", bitrate: audioKbps * 1000 },
    });
    if (!conversion.isValid) return blob;
    conversion.onProgress = (progress) => report("Making it smaller on the phone… " + Math.floor(progress * 100) + "%");
    await conversion.execute();
    const smaller = new Blob([output.target.buffer], { type: "video/mp4" });
    return smaller.size < blob.size ? smaller : blob;
  }

  function asset(path) {
    const script = document.querySelector('script[src*="/static/team-media.js"]');
    const version = script ? new URL(script.src).search : "";
    return "/static/" + path + version;
  }

  // --- recording in the page (MediaRecorder) ----------------------------------------------

  const recordings = new Map(); // question id -> the recorded Blob
  let recorder = null;

  function recordingType() {
    const wanted = ["video/mp4;codecs=avc1,opus", "video/webm;codecs=vp8,opus", "video/webm", "video/mp4"];
    return wanted.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || "";
  }

  async function startRecording(card) {
    const form = card.querySelector("form.upload-form");
    const say = (text, kind) => {
      const note = form.querySelector(".record-status");
      note.textContent = text;
      note.className = "record-status" + (kind ? " " + kind : "");
    };
    if (!navigator.mediaDevices || !window.MediaRecorder) return say("This browser cannot record: choose a video instead.", "bad");
    if (recorder) return say("Another recording is running.", "bad");
    let stream = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: true,
      });
    } catch (error) {
      return say("The camera or microphone is not available: " + (error.message || error.name), "bad");
    }
    const preview = form.querySelector("video.preview");
    preview.srcObject = stream;
    preview.hidden = false;
    preview.play().catch(() => {});
    const type = recordingType();
    const chunks = [];
    recorder = new MediaRecorder(stream, {
      mimeType: type || undefined,
      videoBitsPerSecond: Math.max(150, TARGET_KBPS - 64) * 1000,
      audioBitsPerSecond: 64000,
    });
    recorder.ondataavailable = (event) => {
      if (event.data && event.data.size) chunks.push(event.data);
    };
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const blob = new Blob(chunks, { type: (recorder && recorder.mimeType) || type || "video/webm" });
      recorder = null;
      recordings.set(card.dataset.question, blob);
      preview.srcObject = null;
      preview.src = URL.createObjectURL(blob);
      preview.controls = true;
      preview.muted = false;
      form.dataset.dirty = "1";
      say("Recorded: " + Math.ceil(blob.size / 1024) + " KB. Fill in the consent and send it.", "ok");
      form.querySelector("[data-record='start']").hidden = false;
      form.querySelector("[data-record='stop']").hidden = true;
    };
    recorder.start(1000);
    form.querySelector("[data-record='start']").hidden = true;
    form.querySelector("[data-record='stop']").hidden = false;
    say("Recording…");
  }

  cards.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-record]");
    if (!button) return;
    const card = button.closest(".card");
    if (button.dataset.record === "start") startRecording(card);
    else if (recorder) recorder.stop();
  });

  TA.teamMedia = { shrink, asset, recordings };
})();
