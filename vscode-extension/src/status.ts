/**
 * What the status bar item and the status view say. Pure: built from `$/progress` values and
 * `codesearch/status` answers, no `vscode` import.
 */

/** One folder in a `codesearch/status` answer (see codesearch/service.py `Project.status`). */
export interface FolderStatus {
  root: string;
  state: string; // starting | indexing | ready | reading | failed | closed
  error?: string;
  progress?: { phase?: string; files_done?: number; files_total?: number; chunks_done?: number };
  index?: { files?: number; chunks?: number; chunks_embedded?: number; model?: string; updated?: string } | null;
  index_error?: string;
}

export interface StatusAnswer {
  version: string;
  folders: FolderStatus[];
}

export interface Bar {
  text: string;
  tooltip: string;
  busy: boolean;
  error: boolean;
}

const numbers = new Intl.NumberFormat("en-US");

export function count(n: number | undefined): string {
  return numbers.format(n ?? 0);
}

function baseName(root: string): string {
  return root.replace(/[\\/]+$/, "").split(/[\\/]/).pop() || root;
}

/** While indexing: the `$/progress` percentage and message. */
export function progressBar(percentage: number | undefined, message: string | undefined, title?: string): Bar {
  const pct = percentage === undefined ? "" : ` ${Math.max(0, Math.min(100, Math.round(percentage)))}%`;
  return {
    text: `$(sync~spin) Code Search${pct}`,
    tooltip: [title ?? "Indexing", message].filter(Boolean).join(": ") + "\nClick for the index status",
    busy: true,
    error: false,
  };
}

/** From a status answer: the chunk count when every folder is ready, else what is going on. */
export function statusBar(answer: StatusAnswer): Bar {
  const folders = answer.folders;
  if (folders.length === 0) {
    return { text: "$(search) Code Search", tooltip: "No folder open", busy: false, error: false };
  }
  const failed = folders.filter((folder) => folder.state === "failed" || (folder.index == null && folder.index_error));
  const busy = folders.some((folder) => folder.state === "starting" || folder.state === "indexing");
  const chunks = folders.reduce((sum, folder) => sum + (folder.index?.chunks ?? 0), 0);
  const embedded = folders.reduce((sum, folder) => sum + (folder.index?.chunks_embedded ?? 0), 0);
  const lines = folders.map(folderLine);
  const tooltip = `${lines.join("\n")}\nClick for the index status`;
  if (failed.length > 0) {
    return { text: "$(error) Code Search", tooltip, busy, error: true };
  }
  if (busy) {
    return { text: `$(sync~spin) Code Search ${count(chunks)} chunks`, tooltip, busy, error: false };
  }
  const pending = chunks - embedded;
  const text = pending > 0 ? `$(search) ${count(chunks)} chunks (${count(pending)} to embed)` : `$(search) ${count(chunks)} chunks`;
  return { text, tooltip, busy: false, error: false };
}

/** One line per folder: name, state and counts (or the error). */
export function folderLine(folder: FolderStatus): string {
  const name = baseName(folder.root);
  if (folder.state === "failed") return `${name}: failed: ${folder.error ?? "unknown error"}`;
  if (folder.index == null) return `${name}: ${folder.state}${folder.index_error ? ` (${folder.index_error})` : ""}`;
  const index = folder.index;
  let line = `${name}: ${folder.state}, ${count(index.files)} files, ${count(index.chunks)} chunks, ${count(index.chunks_embedded)} embedded`;
  const progress = folder.progress;
  if (folder.state === "indexing" && progress?.files_total) {
    line += ` (${progress.phase ?? "indexing"} ${count(progress.files_done)}/${count(progress.files_total)} files)`;
  }
  if (index.model) line += `, model ${index.model}`;
  return line;
}

/** Rows of the status view: one per folder. */
export function statusRows(answer: StatusAnswer): { label: string; description: string; detail: string }[] {
  return answer.folders.map((folder) => {
    const index = folder.index;
    const detail =
      folder.state === "failed"
        ? `failed: ${folder.error ?? "unknown error"}`
        : index
          ? `${count(index.files)} files · ${count(index.chunks)} chunks · ${count(index.chunks_embedded)} embedded` +
            (index.model ? ` · ${index.model}` : "") +
            (index.updated ? ` · updated ${index.updated}` : "")
          : (folder.index_error ?? "no index yet");
    return { label: baseName(folder.root), description: `${folder.state} · ${folder.root}`, detail };
  });
}
