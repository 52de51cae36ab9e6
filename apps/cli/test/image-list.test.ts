import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PREBUILD_IMAGES } from '@nixyard/core';
import { listProblems, parseImageList } from '../src/image-list.js';

test('one image a line; blank lines, whole-line and trailing comments ignored; line numbers kept', () => {
  const text = ['# nightly images', '', 'shell/git:latest', '  hello  ', 'jq # trailing comment', '\t', 'arm64/hello#no space', ''].join('\n');
  const list = parseImageList(text);
  assert.deepEqual(list.invalid, []);
  assert.deepEqual(list.images, [
    { line: 3, image: 'shell/git:latest' },
    { line: 4, image: 'hello' },
    { line: 5, image: 'jq' },
    { line: 7, image: 'arm64/hello' },
  ]);
});

test('CRLF line ends and a byte-order mark are read as plain lines', () => {
  const list = parseImageList('\uFEFFhello\r\njq:latest\r\n');
  assert.deepEqual(list.images, [
    { line: 1, image: 'hello' },
    { line: 2, image: 'jq:latest' },
  ]);
});

test('every bad line is reported with its number and the parser\'s reason', () => {
  const list = parseImageList(['hello', 'Bad!name', 'two words', 'jq@sha256:' + 'a'.repeat(64), 'hello:-x', 'curl'].join('\n'));
  assert.deepEqual(list.images.map((i) => i.line), [1, 6]);
  assert.deepEqual(list.invalid.map((i) => [i.line, i.image]), [
    [2, 'Bad!name'],
    [3, 'two words'],
    [4, 'jq@sha256:' + 'a'.repeat(64)],
    [5, 'hello:-x'],
  ]);
  assert.match(list.invalid[0]!.reason, /Bad!name/);
  assert.match(list.invalid[2]!.reason, /not a digest/);
  const problems = listProblems(list, 'images.txt');
  assert.equal(problems.length, 4);
  assert.match(problems[0]!, /^images\.txt:2: Bad!name: /);
});

test('an empty list and an oversized one cannot be submitted', () => {
  assert.deepEqual(listProblems(parseImageList('hello\n'), 'f'), []);
  assert.deepEqual(listProblems(parseImageList('# nothing\n\n'), 'f'), ['f: no images (only blank lines and comments)']);
  const big = parseImageList(Array.from({ length: MAX_PREBUILD_IMAGES + 1 }, () => 'hello').join('\n'));
  assert.match(listProblems(big, 'f')[0]!, /10001 images; a batch holds at most 10000/);
});
