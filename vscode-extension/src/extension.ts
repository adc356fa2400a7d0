/**
 * The extension's entry point: starts `codesearch serve` with vscode-languageclient (one server
 * for all workspace folders), registers the commands, keeps the status bar item, and restarts
 * the server when a setting it depends on changes. All search logic lives in the server.
 */

import * as vscode from "vscode";
import {
  type ErrorHandler,
  CloseAction,
  ErrorAction,
  type Executable,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
} from "vscode-languageclient/node";
import {
  findExecutable,
  initializationOptions,
  readSettings,
  RESTART_SETTINGS,
  serverCommand,
  type Settings,
  startFailureMessage,
} from "./config";
import { findSimilar, openSearch } from "./search";
import { type StatusAnswer, statusRows } from "./status";
import { StatusItem } from "./statusBar";

let client: LanguageClient | undefined;
let starting: Promise<void> = Promise.resolve();
let output: vscode.OutputChannel;
let status: StatusItem;

function settings(): Settings {
  const config = vscode.workspace.getConfiguration("codesearch");
  const { settings, problems } = readSettings((key) => config.get(key));
  for (const problem of problems) void vscode.window.showWarningMessage(`Code Search: ${problem}; using the default.`);
  return settings;
}

/** Offers the fix for a server that cannot start (or keeps dying). Not awaited by starts: the
 * notification stays until the user answers it, and a restart must not wait for that. */
async function reportStartFailure(message: string): Promise<void> {
  status.failed(message);
  const choice = await vscode.window.showErrorMessage(message, "Open Settings", "Show Log");
  if (choice === "Open Settings") {
    await vscode.commands.executeCommand("workbench.action.openSettings", "codesearch.");
  } else if (choice === "Show Log") {
    output.show(true);
  }
}

/** Restarts a crashed server at most 3 times in 3 minutes, then says so once. */
function errorHandler(display: string): ErrorHandler {
  const crashes: number[] = [];
  return {
    error: () => ({ action: ErrorAction.Continue }),
    closed: () => {
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && now - crashes[0] > 180_000) crashes.shift();
      if (crashes.length <= 3) return { action: CloseAction.Restart, handled: true };
      void reportStartFailure(`Code Search: the server (${display}) stopped 4 times in 3 minutes; see the log.`);
      return { action: CloseAction.DoNotRestart, handled: true };
    },
  };
}

async function start(): Promise<void> {
  status.starting();
  const current = settings();
  const command = serverCommand(current);
  const executable = findExecutable(command.command);
  if (executable === undefined) {
    void reportStartFailure(startFailureMessage(command, new Error(`spawn ${command.command} ENOENT`)));
    return;
  }
  const server: Executable = {
    command: executable,
    args: command.args,
    // stdio; no `transport` here, or the client would append `--stdio` (accepted, but not needed)
    options: { env: { ...process.env, LANCEDB_LOG: "error" } },
  };
  const options: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }], // didOpen: open files get their vectors first
    initializationOptions: initializationOptions(current),
    outputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    errorHandler: errorHandler(command.display),
    initializationFailedHandler: () => false, // no retry; start() rejects and says so once
  };
  const created = new LanguageClient("codesearch", "Code Search", server, options);
  client = created;
  try {
    await created.start();
  } catch (error) {
    if (client === created) client = undefined;
    void reportStartFailure(startFailureMessage(command, error));
    return;
  }
  // Indexing progress goes to the status bar item (instead of the client's progress popup).
  created.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
    created.onProgress(WorkDoneProgress.type, token, (value) => status.progress(token, value));
  });
  status.attach(created);
}

async function stop(): Promise<void> {
  const running = client;
  client = undefined;
  status.attach(undefined);
  if (running !== undefined) await running.stop().catch(() => undefined);
}

function restart(): Promise<void> {
  starting = starting.then(stop).then(start);
  return starting;
}

/** The client once it has started, or a message saying why there is none. */
async function ready(): Promise<LanguageClient | undefined> {
  await starting;
  if (client?.isRunning()) return client;
  void vscode.window.showErrorMessage("Code Search: the server is not running.", "Restart Server", "Show Log").then(
    (choice) => {
      if (choice === "Restart Server") void restart();
      if (choice === "Show Log") output.show(true);
    },
  );
  return undefined;
}

function selectedText(): string {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined || editor.selection.isEmpty || !editor.selection.isSingleLine) return "";
  return editor.document.getText(editor.selection).trim();
}

async function showStatus(): Promise<void> {
  const running = await ready();
  if (running === undefined) return;
  const answer: StatusAnswer | undefined = await status.refresh();
  if (answer === undefined) return;
  const pick = vscode.window.createQuickPick();
  pick.title = `Code Search ${answer.version}: index status`;
  pick.items = statusRows(answer);
  pick.placeholder = answer.folders.length ? "Select a folder to reindex it" : "No workspace folder is open";
  pick.onDidAccept(() => {
    const index = pick.items.indexOf(pick.activeItems[0]);
    pick.hide();
    const folder = answer.folders[index];
    if (folder) void reindex(vscode.Uri.file(folder.root).toString());
  });
  pick.onDidHide(() => pick.dispose());
  pick.show();
}

async function reindex(uri?: string): Promise<void> {
  const running = await ready();
  if (running === undefined) return;
  try {
    const answer = await running.sendRequest<{ folders: string[] }>("codesearch/reindex", uri ? { uri } : {});
    void vscode.window.showInformationMessage(`Code Search: reindexing ${answer.folders.length} folder(s).`);
    void status.refresh();
  } catch (error) {
    void vscode.window.showErrorMessage(`Code Search: ${(error as Error).message}`);
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("Code Search");
  status = new StatusItem();
  context.subscriptions.push(
    output,
    status,
    vscode.commands.registerCommand("codesearch.openSearch", async (query?: unknown) => {
      const running = await ready();
      if (running) await openSearch(running, settings(), typeof query === "string" ? query : selectedText());
    }),
    vscode.commands.registerCommand("codesearch.findSimilar", async () => {
      const running = await ready();
      if (running) await findSimilar(running, settings());
    }),
    vscode.commands.registerCommand("codesearch.reindexWorkspace", () => reindex()),
    vscode.commands.registerCommand("codesearch.showStatus", () => showStatus()),
    vscode.commands.registerCommand("codesearch.restartServer", () => restart()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (RESTART_SETTINGS.some((key) => event.affectsConfiguration(`codesearch.${key}`))) void restart();
    }),
    { dispose: () => void stop() },
  );
  starting = start();
  await starting;
}

export function deactivate(): Thenable<void> | undefined {
  return client?.stop();
}
