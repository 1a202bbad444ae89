// This cr's version (package.json's): written into every image, printed by --version. Its own
// module, so --version loads nothing else.
import { readFileSync } from 'node:fs';

export function toolVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
