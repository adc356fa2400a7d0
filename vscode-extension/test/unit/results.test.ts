import assert from "node:assert/strict";
import { test } from "node:test";
import { Debouncer, kindIcon, Latest, location, oneLine, type SearchResult, summary, toRow } from "../../src/results";

function result(overrides: Partial<SearchResult> = {}): SearchResult {
  return {
    uri: "file:///work/app/src/http/links.py",
    range: { start: { line: 41, character: 0 }, end: { line: 60, character: 0 } },
    symbol: "parse_header_links",
    kind: "function",
    language: "python",
    score: 0.83219,
    snippet: "@cache\ndef parse_header_links(value):\n    \"\"\"Return a list of parsed link headers.\"\"\"\n",
    path: "src/http/links.py",
    partial: false,
    ...overrides,
  };
}

test("a row shows the symbol with its kind's icon, path:line (1-based), score and one line", () => {
  const row = toRow(result());
  assert.equal(row.label, "$(symbol-function) parse_header_links");
  assert.equal(row.description, "src/http/links.py:42");
  assert.equal(row.detail, "0.832  def parse_header_links(value):");
  assert.equal(row.alwaysShow, true);
  assert.equal(row.result.symbol, "parse_header_links");
});

test("multi-root rows name the folder; a chunk without a symbol shows the file name", () => {
  assert.equal(location(result(), "backend"), "backend › src/http/links.py:42");
  assert.equal(toRow(result({ symbol: "", kind: "text" })).label, "$(file-text) links.py");
  assert.equal(toRow(result(), undefined, false).alwaysShow, false);
});

test("kinds map to codicons, unknown kinds to a generic one", () => {
  assert.equal(kindIcon("method"), "symbol-method");
  assert.equal(kindIcon("class"), "symbol-class");
  assert.equal(kindIcon("no-such-kind"), "symbol-misc");
});

test("oneLine skips comments and decorators, collapses spaces and truncates", () => {
  assert.equal(oneLine("// comment\n\n   int   main(void) {\n"), "int main(void) {");
  assert.equal(oneLine("# only a comment"), "# only a comment");
  assert.equal(oneLine(""), "");
  const long = oneLine(`x = ${"a".repeat(300)}`, 40);
  assert.equal(long.length, 40);
  assert.ok(long.endsWith("…"));
});

test("summary counts results and says when indexing is not finished", () => {
  assert.equal(summary([result()], 12.4), "1 result in 12 ms");
  assert.equal(summary([result(), result({ partial: true })], 80), "2 results in 80 ms (indexing: results so far)");
  assert.equal(summary([], 3), "0 results in 3 ms");
});

test("the debouncer runs only the last call, after the pause", async () => {
  const calls: string[] = [];
  const debounced = new Debouncer(30, (value: string) => void calls.push(value));
  debounced.call("p");
  debounced.call("pa");
  debounced.call("par");
  assert.equal(debounced.pending, true);
  assert.deepEqual(calls.slice(), []);
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.deepEqual(calls.slice(), ["par"]);
  debounced.call("parse");
  debounced.cancel();
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(calls.slice(), ["par"]);
  const immediate = new Debouncer(0, (value: string) => void calls.push(value));
  immediate.call("now");
  assert.deepEqual(calls.slice(), ["par", "now"]);
});

test("only the newest request's answer counts", () => {
  const latest = new Latest();
  const first = latest.next();
  const second = latest.next();
  assert.equal(latest.isCurrent(first), false);
  assert.equal(latest.isCurrent(second), true);
});
