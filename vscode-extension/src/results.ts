/**
 * Search results → QuickPick rows, and the timing helpers of search-as-you-type. Pure: no
 * `vscode` import (rows are plain objects that fit `vscode.QuickPickItem`).
 */

/** One `codesearch/search` or `codesearch/similar` result, as the server sends it. */
export interface SearchResult {
  uri: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  symbol: string;
  kind: string;
  language: string;
  score: number;
  snippet: string;
  path: string;
  partial: boolean;
}

export interface ResultRow {
  label: string;
  description: string;
  detail: string;
  alwaysShow: boolean;
  result: SearchResult;
}

const ICONS: Record<string, string> = {
  function: "symbol-function",
  method: "symbol-method",
  constructor: "symbol-constructor",
  class: "symbol-class",
  struct: "symbol-struct",
  interface: "symbol-interface",
  trait: "symbol-interface",
  enum: "symbol-enum",
  module: "symbol-module",
  namespace: "symbol-namespace",
  impl: "symbol-class",
  type: "symbol-type-parameter",
  object: "symbol-object",
  macro: "symbol-function",
  text: "file-text",
};

export function kindIcon(kind: string): string {
  return ICONS[kind] ?? "symbol-misc";
}

/** The first line of a snippet that says something, whitespace collapsed, at most `max` chars. */
export function oneLine(snippet: string, max = 100): string {
  const line =
    snippet
      .split(/\r?\n/)
      .map((text) => text.trim())
      .find((text) => text !== "" && !/^[#@]|^\/\/|^\/\*|^\*/.test(text)) ??
    snippet.trim().split(/\r?\n/)[0] ??
    "";
  const flat = line.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `path:line` (1-based, as editors show it), led by the folder name in a multi-root window. */
export function location(result: SearchResult, folderName?: string): string {
  const where = `${result.path}:${result.range.start.line + 1}`;
  return folderName ? `${folderName} › ${where}` : where;
}

/** A QuickPick row: symbol (with its kind's icon), `path:line`, score and a one-line snippet. */
export function toRow(result: SearchResult, folderName?: string, alwaysShow = true): ResultRow {
  const name = result.symbol || result.path.split("/").pop() || result.path;
  return {
    label: `$(${kindIcon(result.kind)}) ${name}`,
    description: location(result, folderName),
    detail: `${result.score.toFixed(3)}  ${oneLine(result.snippet)}`,
    alwaysShow, // true: the server ranked them, the QuickPick must not filter them by label
    result,
  };
}

/** The QuickPick's title line for a set of results. */
export function summary(results: SearchResult[], ms: number): string {
  const partial = results.some((result) => result.partial);
  const count = results.length === 1 ? "1 result" : `${results.length} results`;
  return `${count} in ${Math.round(ms)} ms${partial ? " (indexing: results so far)" : ""}`;
}

/** Runs the last call `delay` ms after calls stop; `cancel` drops a pending one. */
export class Debouncer<A extends unknown[]> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  constructor(
    private readonly delay: number,
    private readonly fn: (...args: A) => void,
  ) {}
  call(...args: A): void {
    this.cancel();
    if (this.delay <= 0) {
      this.fn(...args);
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fn(...args);
    }, this.delay);
  }
  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
  get pending(): boolean {
    return this.timer !== undefined;
  }
}

/** Numbers requests so that only the newest answer is shown (older ones may arrive later). */
export class Latest {
  private last = 0;
  next(): number {
    return ++this.last;
  }
  isCurrent(ticket: number): boolean {
    return ticket === this.last;
  }
}
