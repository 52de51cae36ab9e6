// The image-list file `nixyard prebuild` reads: one image reference per line (`shell/git:latest`,
// `arm64/hello`), blank lines and `#` comments ignored. Every line is checked with the very parser
// the API uses (parseImageReference), so a typo is reported with its line number before anything
// is submitted, and the server's answer can be mapped back to lines.

import { MAX_PREBUILD_IMAGES, parseImageReference } from '@nixyard/core';

export interface ImageLine {
  /** 1-based line number in the file. */
  line: number;
  /** The reference as written, comment and surrounding blanks removed. */
  image: string;
}

export interface InvalidLine extends ImageLine {
  reason: string;
}

export interface ImageList {
  images: ImageLine[];
  invalid: InvalidLine[];
}

/** Splits the text into image lines and checks each one; it never throws on bad content. */
export function parseImageList(text: string): ImageList {
  const images: ImageLine[] = [];
  const invalid: InvalidLine[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, index) => {
    const hash = raw.indexOf('#');
    // `#` cannot occur in an image reference, so everything after it is a comment.
    const image = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    if (image === '') return;
    const line = index + 1;
    try {
      parseImageReference(image);
      images.push({ line, image });
    } catch (err) {
      invalid.push({ line, image, reason: err instanceof Error ? err.message : String(err) });
    }
  });
  return { images, invalid };
}

/**
 * Why a parsed list cannot be submitted, one message per problem, or an empty array. Covers the
 * invalid lines and the batch-level limits the API would refuse anyway.
 */
export function listProblems(list: ImageList, source: string): string[] {
  const problems = list.invalid.map((bad) => `${source}:${bad.line}: ${bad.image}: ${bad.reason}`);
  if (list.images.length + list.invalid.length === 0) problems.push(`${source}: no images (only blank lines and comments)`);
  if (list.images.length > MAX_PREBUILD_IMAGES) {
    problems.push(`${source}: ${list.images.length} images; a batch holds at most ${MAX_PREBUILD_IMAGES}`);
  }
  return problems;
}
