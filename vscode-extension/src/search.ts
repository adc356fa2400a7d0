/**
 * The result pickers: **Code Search: Search** (searches as you type) and the list of
 * **Code Search: Find Similar Code**. Both preview the location of the highlighted row and open
 * the file at the chunk's range on accept; closing without a choice goes back to where you were.
 */

import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { Debouncer, Latest, type ResultRow, type SearchResult, summary, toRow } from "./results";
import type { Settings } from "./config";

type Row = vscode.QuickPickItem & ResultRow;

const PREVIEW_DELAY_MS = 80;

/** Line highlight of the previewed or opened chunk. */
const highlight = vscode.window.createTextEditorDecorationType({
  backgroundColor: new vscode.ThemeColor("editor.rangeHighlightBackground"),
  isWholeLine: true,
});

function rangeOf(result: SearchResult): vscode.Range {
  const start = result.range.start.line;
  const end = Math.max(start, result.range.end.line - (result.range.end.character === 0 ? 1 : 0));
  return new vscode.Range(start, 0, end, 0);
}

function folderName(uri: string): string | undefined {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length < 2) return undefined;
  return vscode.workspace.getWorkspaceFolder(vscode.Uri.parse(uri))?.name;
}

function rows(results: SearchResult[], alwaysShow = true): Row[] {
  return results.map((result) => toRow(result, folderName(result.uri), alwaysShow));
}

/** Opens `result` with its first line at the cursor and the chunk highlighted. */
async function reveal(result: SearchResult, preview: boolean): Promise<vscode.TextEditor> {
  const range = rangeOf(result);
  const editor = await vscode.window.showTextDocument(vscode.Uri.parse(result.uri), {
    preview,
    preserveFocus: preview,
    selection: new vscode.Range(range.start, range.start),
  });
  editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  editor.setDecorations(highlight, [range]);
  if (!preview) {
    setTimeout(() => editor.setDecorations(highlight, []), 1500);
  }
  return editor;
}

/** Where the user was before the picker opened, to go back when it closes without a choice. */
class Origin {
  private readonly editor = vscode.window.activeTextEditor;
  private readonly selection = this.editor?.selection;
  private readonly visible = this.editor?.visibleRanges[0];
  private moved = false;

  async preview(result: SearchResult): Promise<void> {
    this.moved = true;
    try {
      await reveal(result, true);
    } catch {
      // a file deleted since it was indexed: nothing to preview
    }
  }

  async restore(): Promise<void> {
    for (const editor of vscode.window.visibleTextEditors) editor.setDecorations(highlight, []);
    if (!this.moved || this.editor === undefined) return;
    const editor = await vscode.window.showTextDocument(this.editor.document, {
      viewColumn: this.editor.viewColumn,
      selection: this.selection,
    });
    if (this.visible) editor.revealRange(this.visible, vscode.TextEditorRevealType.AtTop);
  }
}

/** A QuickPick of results with preview, accept and restore. */
function resultPicker(title: string, placeholder: string): {
  pick: vscode.QuickPick<Row>;
  done: Promise<void>;
} {
  const pick = vscode.window.createQuickPick<Row>();
  pick.title = title;
  pick.placeholder = placeholder;
  pick.matchOnDescription = true;
  pick.matchOnDetail = false;
  pick.ignoreFocusOut = false;
  const origin = new Origin();
  let accepted = false;
  const preview = new Debouncer(PREVIEW_DELAY_MS, (row: Row) => void origin.preview(row.result));
  pick.onDidChangeActive((active) => {
    if (active[0]) preview.call(active[0]);
  });
  pick.onDidAccept(() => {
    const row = pick.selectedItems[0] ?? pick.activeItems[0];
    if (!row) return;
    accepted = true;
    preview.cancel();
    pick.hide();
    reveal(row.result, false).then(undefined, (error) =>
      vscode.window.showErrorMessage(`Code Search: cannot open ${row.result.path}: ${error}`),
    );
  });
  const done = new Promise<void>((resolve) =>
    pick.onDidHide(() => {
      preview.cancel();
      if (!accepted) void origin.restore();
      pick.dispose();
      resolve();
    }),
  );
  return { pick, done };
}

function isCancelled(error: unknown): boolean {
  return (error as { code?: number })?.code === -32800 || (error as Error)?.name === "Canceled";
}

function errorText(error: unknown): string {
  return (error as Error)?.message ?? String(error);
}

/** **Code Search: Search**: results as you type, newest query wins, stale answers dropped. */
export function openSearch(client: LanguageClient, settings: Settings, initial = ""): Promise<void> {
  const { pick, done } = resultPicker("Code Search", "Describe the code you want, in words or code");
  const latest = new Latest();
  let inFlight: vscode.CancellationTokenSource | undefined;

  const run = async (query: string): Promise<void> => {
    inFlight?.cancel();
    const ticket = latest.next();
    if (query.trim() === "") {
      pick.items = [];
      pick.title = "Code Search";
      pick.busy = false;
      return;
    }
    const cancel = new vscode.CancellationTokenSource();
    inFlight = cancel;
    pick.busy = true;
    const started = Date.now();
    try {
      const params = { query, k: settings.maxResults, mode: settings.searchMode };
      const results = await client.sendRequest<SearchResult[]>("codesearch/search", params, cancel.token);
      if (!latest.isCurrent(ticket)) return;
      pick.items = rows(results);
      pick.title = `Code Search: ${summary(results, Date.now() - started)}`;
    } catch (error) {
      if (!latest.isCurrent(ticket) || isCancelled(error)) return;
      pick.items = [];
      pick.title = `Code Search: ${errorText(error)}`;
    } finally {
      cancel.dispose();
      if (latest.isCurrent(ticket)) pick.busy = false;
    }
  };
  const debounced = new Debouncer(settings.debounceMs, (query: string) => void run(query));
  pick.onDidChangeValue((value) => {
    pick.busy = value.trim() !== "";
    debounced.call(value);
  });
  pick.onDidHide(() => {
    debounced.cancel();
    inFlight?.cancel();
  });
  pick.value = initial;
  pick.show();
  if (initial.trim() !== "") void run(initial);
  return done;
}

/** **Code Search: Find Similar Code**: code like the selection, the selection itself left out. */
export async function findSimilar(client: LanguageClient, settings: Settings): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined || editor.selection.isEmpty) {
    void vscode.window.showInformationMessage("Code Search: select the code to compare first.");
    return;
  }
  const selection = editor.selection;
  const name = vscode.workspace.asRelativePath(editor.document.uri);
  const lines = `${selection.start.line + 1}–${selection.end.line + 1}`;
  const { pick, done } = resultPicker(`Code like ${name}:${lines}`, "Type to filter the results");
  pick.busy = true;
  pick.show();
  const started = Date.now();
  try {
    const params = {
      uri: editor.document.uri.toString(),
      range: { start: selection.start, end: selection.end },
      k: settings.maxResults,
    };
    const results = await client.sendRequest<SearchResult[]>("codesearch/similar", params);
    pick.items = rows(results, false); // typing filters them
    pick.title = `Code like ${name}:${lines}: ${summary(results, Date.now() - started)}`;
  } catch (error) {
    pick.title = `Code Search: ${errorText(error)}`;
  } finally {
    pick.busy = false;
  }
  return done;
}
