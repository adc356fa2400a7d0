/**
 * Settings → how to start the server and what to tell it. Pure: no `vscode` import, so the
 * unit tests run under plain Node.
 */

import * as fs from "node:fs";
import * as path from "node:path";

export interface Settings {
  serverCommand: string[];
  pythonPath: string;
  model: string;
  ignore: string[];
  maxResults: number;
  searchMode: "hybrid" | "dense" | "lexical";
  debounceMs: number;
  secrets: "redact" | "skip" | "off";
  maxFileSize: number;
}

export const SECRET_MODES = ["redact", "skip", "off"];
/** The server's own default (codesearch.files.DEFAULT_MAX_FILE_BYTES). */
export const DEFAULT_MAX_FILE_SIZE = 1024 * 1024;

export const DEFAULTS: Settings = {
  serverCommand: [],
  pythonPath: "",
  model: "",
  ignore: [],
  maxResults: 50,
  searchMode: "hybrid",
  debounceMs: 200,
  secrets: "redact",
  maxFileSize: DEFAULT_MAX_FILE_SIZE,
};

/** Settings whose change needs a new server (the others are read at each search). */
export const RESTART_SETTINGS = [
  "serverCommand",
  "pythonPath",
  "model",
  "ignore",
  "maxResults",
  "secrets",
  "maxFileSize",
];

export interface ServerCommand {
  command: string;
  args: string[];
  /** As the user would type it, for messages. */
  display: string;
}

function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/** `codesearch.serverCommand`, else `codesearch.pythonPath -m lsp`, else `codesearch serve`. */
export function serverCommand(settings: Pick<Settings, "serverCommand" | "pythonPath">): ServerCommand {
  const explicit = settings.serverCommand.map((word) => word.trim()).filter((word) => word !== "");
  let words: string[];
  if (explicit.length > 0) {
    words = explicit;
  } else if (settings.pythonPath.trim() !== "") {
    words = [settings.pythonPath.trim(), "-m", "lsp"];
  } else {
    words = ["codesearch", "serve"];
  }
  return { command: words[0], args: words.slice(1), display: words.map(quote).join(" ") };
}

/** The server's `initializationOptions` (camelCase; see lsp/options.py). */
export function initializationOptions(settings: Settings): Record<string, unknown> {
  const options: Record<string, unknown> = { maxResults: settings.maxResults };
  if (settings.model.trim() !== "") {
    options.model = settings.model.trim();
  }
  const ignore = settings.ignore.filter((glob) => glob.trim() !== "");
  if (ignore.length > 0) {
    options.ignore = ignore;
  }
  if (settings.secrets !== DEFAULTS.secrets) {
    options.secrets = settings.secrets;
  }
  if (settings.maxFileSize !== DEFAULTS.maxFileSize) {
    options.maxFileSize = settings.maxFileSize;
  }
  return options;
}

/** Raw values from `workspace.getConfiguration("codesearch")`, each checked, defaults for the rest. */
export function readSettings(get: (key: string) => unknown): { settings: Settings; problems: string[] } {
  const problems: string[] = [];
  const strings = (key: keyof Settings): string[] => {
    const value = get(key);
    if (value === undefined || value === null) return [...(DEFAULTS[key] as string[])];
    if (Array.isArray(value) && value.every((item) => typeof item === "string")) return value;
    problems.push(`codesearch.${key} must be a list of strings`);
    return [...(DEFAULTS[key] as string[])];
  };
  const text = (key: keyof Settings): string => {
    const value = get(key);
    if (value === undefined || value === null) return DEFAULTS[key] as string;
    if (typeof value === "string") return value;
    problems.push(`codesearch.${key} must be a string`);
    return DEFAULTS[key] as string;
  };
  const integer = (key: keyof Settings, low: number, high: number): number => {
    const value = get(key);
    if (value === undefined || value === null) return DEFAULTS[key] as number;
    if (typeof value === "number" && Number.isInteger(value) && value >= low && value <= high) return value;
    problems.push(`codesearch.${key} must be an integer from ${low} to ${high}`);
    return DEFAULTS[key] as number;
  };
  const mode = text("searchMode");
  const modes = ["hybrid", "dense", "lexical"];
  if (!modes.includes(mode)) problems.push(`codesearch.searchMode must be one of ${modes.join(", ")}`);
  const secrets = text("secrets");
  if (!SECRET_MODES.includes(secrets)) problems.push(`codesearch.secrets must be one of ${SECRET_MODES.join(", ")}`);
  return {
    settings: {
      serverCommand: strings("serverCommand"),
      pythonPath: text("pythonPath"),
      model: text("model"),
      ignore: strings("ignore"),
      maxResults: integer("maxResults", 1, 1000),
      searchMode: (modes.includes(mode) ? mode : DEFAULTS.searchMode) as Settings["searchMode"],
      debounceMs: integer("debounceMs", 0, 2000),
      secrets: (SECRET_MODES.includes(secrets) ? secrets : DEFAULTS.secrets) as Settings["secrets"],
      maxFileSize: integer("maxFileSize", 1, Number.MAX_SAFE_INTEGER),
    },
    problems,
  };
}

/** The notification shown when the server cannot start, with the fix. */
export function startFailureMessage(command: ServerCommand, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  if (/ENOENT|not found|no such file/i.test(reason)) {
    return (
      `Code Search could not start its server (${command.display}): ${command.command} was not found. ` +
      "Install it (pipx install semantic-codesearch puts codesearch on PATH), or set codesearch.pythonPath to a " +
      "python that has it (pip install semantic-codesearch), or codesearch.serverCommand to the full command."
    );
  }
  return (
    `Code Search could not start its server (${command.display}): ${reason}. Check codesearch.serverCommand / ` +
    "codesearch.pythonPath, and the Code Search output channel for the server's log."
  );
}

/**
 * Where `command` would be found: itself when it has a slash, else the first executable file of
 * that name on `PATH`. `undefined` when there is none (checked before starting, so that a missing
 * server gives one clear message instead of the client's retries).
 */
export function findExecutable(
  command: string,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string | undefined {
  const isFile = (candidate: string): boolean => {
    try {
      const stat = fs.statSync(candidate);
      if (!stat.isFile()) return false;
      if (platform !== "win32") fs.accessSync(candidate, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const home = env.HOME ?? env.USERPROFILE ?? "";
  const expanded = command.startsWith("~/") && home ? path.join(home, command.slice(2)) : command;
  if (expanded.includes("/") || expanded.includes("\\")) {
    return isFile(expanded) ? path.resolve(expanded) : undefined;
  }
  const suffixes = platform === "win32" ? (env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";").concat([""]) : [""];
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    for (const suffix of suffixes) {
      const candidate = path.join(dir, expanded + suffix);
      if (isFile(candidate)) return candidate;
    }
  }
  return undefined;
}
