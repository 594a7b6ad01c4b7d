/** Configuration samples shared by the tests (one copy each). */
import fs from 'node:fs';

/** The smallest file fence_virtd accepts. */
export const MINIMAL_CONF = 'fence_virtd { listener = "multicast"; backend = "libvirt"; }\n';

/** Debian 12's shipped /etc/fence_virt.conf, byte for byte (comment and trailing blank included). */
export const DEBIAN_SAMPLE = fs.readFileSync(
  new URL('../fixtures/debian-fence_virt.conf', import.meta.url),
  'utf8',
);
