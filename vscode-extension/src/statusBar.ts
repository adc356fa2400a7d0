/**
 * The status bar item: indexing progress from the server's `$/progress`, then the chunk count
 * from `codesearch/status`; a click shows the index status. While a folder is still being
 * indexed it also asks for the status every few seconds, so it is right even when a progress
 * report was missed.
 */

import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { type Bar, progressBar, type StatusAnswer, statusBar } from "./status";

const POLL_MS = 3000;

export class StatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("codesearch.status", vscode.StatusBarAlignment.Left, 0);
  private readonly titles = new Map<string | number, string>();
  private poll: ReturnType<typeof setTimeout> | undefined;
  private client: LanguageClient | undefined;

  constructor() {
    this.item.name = "Code Search";
    this.item.command = "codesearch.showStatus";
    this.starting();
  }

  starting(): void {
    this.show({ text: "$(sync~spin) Code Search", tooltip: "Starting the server", busy: true, error: false });
  }

  /** The running client to ask for the status; `undefined` once it has stopped. */
  attach(client: LanguageClient | undefined): void {
    this.client = client;
    this.titles.clear();
    if (client === undefined) {
      this.stopPolling();
      const tooltip = "The server is not running: click for Code Search: Show Index Status";
      this.show({ text: "$(circle-slash) Code Search", tooltip, busy: false, error: false });
      return;
    }
    void this.refresh();
  }

  /** A `$/progress` value for `token` (begin, report or end). */
  progress(token: string | number, value: { kind: string; title?: string; message?: string; percentage?: number }): void {
    if (value.kind === "begin") this.titles.set(token, value.title ?? "Indexing");
    if (value.kind === "end") {
      this.titles.delete(token);
      void this.refresh();
      return;
    }
    this.show(progressBar(value.percentage, value.message, this.titles.get(token)));
  }

  failed(message: string): void {
    this.stopPolling();
    this.show({ text: "$(error) Code Search", tooltip: message, busy: false, error: true });
  }

  /** Asks the server for its status; keeps asking while a folder is being indexed. */
  async refresh(): Promise<StatusAnswer | undefined> {
    this.stopPolling();
    const client = this.client;
    if (client === undefined || !client.isRunning()) return undefined;
    try {
      const answer = await client.sendRequest<StatusAnswer>("codesearch/status", {});
      if (client !== this.client) return answer;
      const bar = statusBar(answer);
      if (this.titles.size === 0 || !bar.busy) this.show(bar);
      if (bar.busy) this.poll = setTimeout(() => void this.refresh(), POLL_MS);
      return answer;
    } catch (error) {
      if (client === this.client && client.isRunning()) this.failed(`Code Search: ${(error as Error).message}`);
      return undefined;
    }
  }

  private show(bar: Bar): void {
    this.item.text = bar.text;
    this.item.tooltip = bar.tooltip;
    this.item.backgroundColor = bar.error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
    this.item.show();
  }

  private stopPolling(): void {
    if (this.poll !== undefined) clearTimeout(this.poll);
    this.poll = undefined;
  }

  dispose(): void {
    this.stopPolling();
    this.item.dispose();
  }
}
