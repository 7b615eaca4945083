// Evan Wallace's own ThumbHash encoder on raw RGBA: one JSON request per stdin line, one answer per line.
// generate.py runs it in a temporary folder after `npm install thumbhash@0.1.1`.
import { createInterface } from "node:readline";
import { rgbaToThumbHash } from "thumbhash";

for await (const line of createInterface({ input: process.stdin })) {
  const { name, width, height, rgba } = JSON.parse(line);
  const hash = rgbaToThumbHash(width, height, Buffer.from(rgba, "base64"));
  console.log(JSON.stringify({ name, thumbhash: Buffer.from(hash).toString("base64") }));
}
