"""Small real-world-shaped source files, one per supported language, for the chunker tests."""

SAMPLES: dict[str, tuple[str, str]] = {
    "python": (
        "pkg/links.py",
        '''"""Header link parsing."""
import re

LINK_RE = re.compile(r"<([^>]*)>")


def parse_header_links(value):
    """Return a list of parsed link headers."""
    links = []
    for val in value.split(","):
        links.append(val.strip())
    return links


class Session:
    """A session with cookies."""

    timeout = 30

    @property
    def cookies(self):
        return self._cookies

    def request(self, method, url):
        return (method, url)
''',
    ),
    "javascript": (
        "src/util.js",
        """import fs from "fs";

export function readConfig(path) {
  return JSON.parse(fs.readFileSync(path, "utf8"));
}

const debounce = (fn, ms) => {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
};

class EventBus {
  constructor() {
    this.handlers = {};
  }

  emit(name, payload) {
    (this.handlers[name] || []).forEach((h) => h(payload));
  }
}

module.exports = { debounce, EventBus };
""",
    ),
    "typescript": (
        "src/api.ts",
        """export interface User {
  id: number;
  name: string;
}

export type UserId = number;

export async function fetchUser(id: UserId): Promise<User> {
  const res = await fetch(`/users/${id}`);
  return res.json();
}

export class UserCache {
  private users = new Map<UserId, User>();

  get(id: UserId): User | undefined {
    return this.users.get(id);
  }
}
""",
    ),
    "tsx": (
        "src/Button.tsx",
        """import React from "react";

export function Button(props: { label: string }) {
  return <button className="btn">{props.label}</button>;
}

export const Icon = () => <svg />;
""",
    ),
    "go": (
        "server/handler.go",
        """package server

import "net/http"

// Server serves HTTP.
type Server struct {
	addr string
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(200)
}

func NewServer(addr string) *Server {
	return &Server{addr: addr}
}
""",
    ),
    "java": (
        "src/main/java/app/Cache.java",
        """package app;

import java.util.HashMap;

public class Cache {
    private final HashMap<String, String> map = new HashMap<>();

    public Cache() {
    }

    /** Returns the cached value. */
    public String get(String key) {
        return map.get(key);
    }

    interface Loader {
        String load(String key);
    }
}
""",
    ),
    "rust": (
        "src/lib.rs",
        """use std::collections::HashMap;

/// A key-value store.
#[derive(Debug, Default)]
pub struct Store {
    map: HashMap<String, String>,
}

impl Store {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.map.get(key)
    }
}

pub fn tokenize(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}
""",
    ),
    "c": (
        "src/buf.c",
        """#include <stdlib.h>

struct buffer {
    char *data;
    size_t len;
};

static struct buffer *buffer_new(size_t cap) {
    struct buffer *b = malloc(sizeof *b);
    b->len = 0;
    return b;
}

int buffer_len(const struct buffer *b) { return (int)b->len; }
""",
    ),
    "cpp": (
        "src/matrix.cpp",
        """#include <vector>

namespace linalg {

class Matrix {
 public:
  Matrix(int rows, int cols) : rows_(rows), cols_(cols) {}
  int rows() const { return rows_; }

 private:
  int rows_, cols_;
};

double Matrix_trace(const Matrix& m);

}  // namespace linalg

int linalg::dot(int a, int b) {
  return a * b;
}
""",
    ),
    "csharp": (
        "src/Parser.cs",
        """using System;

namespace Acme.Text
{
    public class Parser
    {
        private int pos;

        public int Parse(string input)
        {
            return input.Length;
        }
    }
}
""",
    ),
    "ruby": (
        "lib/greeter.rb",
        """require "json"

module Greeting
  class Greeter
    def initialize(name)
      @name = name
    end

    def self.default
      new("world")
    end
  end
end
""",
    ),
    "php": (
        "src/User.php",
        """<?php
namespace App\\Models;

use Illuminate\\Database\\Eloquent\\Model;

class User extends Model
{
    public function fullName(): string
    {
        return $this->first . " " . $this->last;
    }
}

function helper($x) { return $x; }
""",
    ),
}
