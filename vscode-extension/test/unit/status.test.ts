import assert from "node:assert/strict";
import { test } from "node:test";
import { folderLine, progressBar, type StatusAnswer, statusBar, statusRows } from "../../src/status";

const ready: StatusAnswer = {
  version: "0.1.0",
  folders: [
    {
      root: "/work/app",
      state: "ready",
      index: { files: 120, chunks: 84123, chunks_embedded: 84123, model: "minilm", updated: "2026-11-24T10:00:00+0000" },
    },
  ],
};

test("progress shows the percentage and the server's message", () => {
  const bar = progressBar(42.4, "embedding 10/20 files, 300 chunks", "Indexing app");
  assert.equal(bar.text, "$(sync~spin) Code Search 42%");
  assert.match(bar.tooltip, /^Indexing app: embedding 10\/20 files, 300 chunks/);
  assert.equal(bar.busy, true);
  assert.equal(progressBar(undefined, undefined).text, "$(sync~spin) Code Search");
  assert.equal(progressBar(140, "").text, "$(sync~spin) Code Search 100%");
});

test("a ready index shows its chunk count; unembedded chunks are counted", () => {
  assert.equal(statusBar(ready).text, "$(search) 84,123 chunks");
  assert.equal(statusBar(ready).busy, false);
  const behind = structuredClone(ready);
  behind.folders[0].index!.chunks_embedded = 84000;
  assert.equal(statusBar(behind).text, "$(search) 84,123 chunks (123 to embed)");
});

test("several folders add up; one indexing keeps the bar busy; one failed shows an error", () => {
  const two = structuredClone(ready);
  two.folders.push({
    root: "/work/lib/",
    state: "indexing",
    progress: { phase: "embedding", files_done: 3, files_total: 9 },
    index: { files: 9, chunks: 877, chunks_embedded: 100 },
  });
  const bar = statusBar(two);
  assert.equal(bar.text, "$(sync~spin) Code Search 85,000 chunks");
  assert.equal(bar.busy, true);
  assert.match(bar.tooltip, /lib: indexing, 9 files, 877 chunks, 100 embedded \(embedding 3\/9 files\)/);
  two.folders.push({ root: "/work/broken", state: "failed", error: "disk full", index: null });
  assert.equal(statusBar(two).error, true);
  assert.match(statusBar(two).tooltip, /broken: failed: disk full/);
  assert.equal(statusBar({ version: "x", folders: [] }).tooltip, "No folder open");
});

test("status rows: one per folder with counts and model", () => {
  const [row] = statusRows(ready);
  assert.equal(row.label, "app");
  assert.equal(row.description, "ready · /work/app");
  assert.equal(row.detail, "120 files · 84,123 chunks · 84,123 embedded · minilm · updated 2026-11-24T10:00:00+0000");
  assert.equal(folderLine({ root: "/x", state: "starting", index: null }), "x: starting");
});
