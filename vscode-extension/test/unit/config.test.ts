import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import {
  DEFAULTS,
  findExecutable,
  initializationOptions,
  readSettings,
  serverCommand,
  startFailureMessage,
} from "../../src/config";

test("the server command: explicit command, else pythonPath -m lsp, else codesearch serve", () => {
  assert.deepEqual(serverCommand({ serverCommand: [], pythonPath: "" }), {
    command: "codesearch",
    args: ["serve"],
    display: "codesearch serve",
  });
  const python = serverCommand({ serverCommand: [], pythonPath: " /opt/my env/bin/python " });
  assert.equal(python.command, "/opt/my env/bin/python");
  assert.deepEqual(python.args, ["-m", "lsp"]);
  assert.equal(python.display, "'/opt/my env/bin/python' -m lsp");
  const explicit = serverCommand({ serverCommand: ["/x/codesearch", "serve", ""], pythonPath: "/ignored" });
  assert.deepEqual([explicit.command, ...explicit.args], ["/x/codesearch", "serve"]);
  assert.equal(serverCommand({ serverCommand: ["  "], pythonPath: "" }).display, "codesearch serve");
});

test("initialization options carry only what is set, in the server's camelCase", () => {
  assert.deepEqual(initializationOptions(DEFAULTS), { maxResults: 50 });
  const options = initializationOptions({ ...DEFAULTS, model: " minilm ", ignore: ["*.gen.go", " "], maxResults: 7 });
  assert.deepEqual(options, { maxResults: 7, model: "minilm", ignore: ["*.gen.go"] });
});

test("bad settings are reported and replaced by their defaults", () => {
  const raw: Record<string, unknown> = {
    serverCommand: "codesearch serve",
    pythonPath: 3,
    model: "m",
    ignore: ["a", 1],
    maxResults: 0,
    searchMode: "fuzzy",
    debounceMs: 150,
  };
  const { settings, problems } = readSettings((key) => raw[key]);
  assert.deepEqual(settings, { ...DEFAULTS, model: "m", debounceMs: 150 });
  assert.equal(problems.length, 5);
  assert.match(problems.join("\n"), /codesearch\.serverCommand must be a list of strings/);
  assert.match(problems.join("\n"), /codesearch\.maxResults must be an integer from 1 to 1000/);
  assert.match(problems.join("\n"), /codesearch\.searchMode must be one of hybrid, dense, lexical/);
  assert.deepEqual(readSettings(() => undefined), { settings: DEFAULTS, problems: [] });
});

test("findExecutable looks on PATH and at explicit paths, and only takes executable files", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cs-exe-"));
  const tool = path.join(dir, "codesearch");
  fs.writeFileSync(tool, "#!/bin/sh\n", { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "notexec"), "", { mode: 0o644 });
  fs.mkdirSync(path.join(dir, "adir"));
  const env = { PATH: ["/nonexistent", dir].join(path.delimiter), HOME: dir };
  assert.equal(findExecutable("codesearch", env, "linux"), tool);
  assert.equal(findExecutable(tool, env, "linux"), tool);
  assert.equal(findExecutable("~/codesearch", env, "linux"), tool);
  assert.equal(findExecutable("notexec", env, "linux"), undefined);
  assert.equal(findExecutable("adir", env, "linux"), undefined);
  assert.equal(findExecutable("missing", env, "linux"), undefined);
  assert.equal(findExecutable(path.join(dir, "missing"), env, "linux"), undefined);
});

test("the start failure message names the command and the fix", () => {
  const command = serverCommand({ serverCommand: [], pythonPath: "" });
  const missing = startFailureMessage(command, new Error("spawn codesearch ENOENT"));
  assert.match(missing, /could not start its server \(codesearch serve\): codesearch was not found\./);
  assert.doesNotMatch(missing, /ENOENT/);
  assert.match(missing, /pip install semantic-codesearch/);
  assert.match(missing, /codesearch\.pythonPath/);
  const other = startFailureMessage(command, "exit code 1");
  assert.match(other, /exit code 1/);
  assert.match(other, /output channel/);
});

test("editors choose the secrets mode and the size limit, as codesearch index --secrets / --max-file-size", () => {
  const raw: Record<string, unknown> = { secrets: "skip", maxFileSize: 2048 };
  const { settings, problems } = readSettings((key) => raw[key]);
  assert.deepEqual(problems, []);
  assert.deepEqual(initializationOptions(settings), { maxResults: 50, secrets: "skip", maxFileSize: 2048 });
  const bad = readSettings((key) => ({ secrets: "maybe", maxFileSize: 0 })[key as "secrets"]);
  assert.deepEqual([bad.settings.secrets, bad.settings.maxFileSize], ["redact", DEFAULTS.maxFileSize]);
  assert.match(bad.problems.join("\n"), /codesearch\.secrets must be one of redact, skip, off/);
  assert.match(bad.problems.join("\n"), /codesearch\.maxFileSize must be an integer from 1 to/);
});
