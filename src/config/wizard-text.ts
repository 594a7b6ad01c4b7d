/**
 * Explanatory paragraphs of the configuration dialog, in our own words. Each ends with a
 * newline; the dialog adds the blank lines around them.
 */

export const LISTENER_INTRO =
  'A listener module receives the fencing requests sent by the\n' +
  'fencing agents that run inside the guests.\n';

export const MULTICAST_INTRO =
  'The multicast listener suits setups where guests and hosts share\n' +
  'a network that delivers multicast traffic.\n';

export const MULTICAST_ADDRESS =
  'Guests send their fencing requests to this multicast group;\n' +
  'fence_virtd joins the group to receive them.\n';

export const INTERFACE =
  'Naming an interface makes fence_virtd join the multicast group\n' +
  'on that interface only; otherwise it uses any interface.  If the\n' +
  'guests reach this host as their gateway (usually through virbr0),\n' +
  'the interface has to be named.\n' +
  "Answer 'none' to use any interface.\n";

export const KEY_FILE =
  'Requests are signed with a shared key file.  Every host and every\n' +
  'guest of the cluster needs an identical copy of this file.\n';

export const TCP_INTRO =
  'The TCP listener accepts direct connections, for guests that\n' +
  'reach this host through a forwarded channel such as viosproxy.\n';

export const VSOCK_INTRO =
  'The vsock listener accepts connections from guests over virtio-vsock\n' +
  '(fence_virt -S); a guest is identified by its context id (CID).\n';

export const TCP_ADDRESS = 'fence_virtd listens for fencing requests on this local address.\n';

export const SERIAL_INTRO =
  'The serial listener talks to guests over a serial port or a\n' +
  'guest-forwarding VMChannel, without IP networking.\n';

export const SERIAL_GUESTS =
  'The guests need an extra device in their libvirt definition;\n' +
  'fence_virt.conf(5) shows examples.\n';

export const SOCKET_DIRECTORY =
  'With a socket directory, fence_virtd uses only the guest Unix\n' +
  'sockets that lie directly in it, instead of every socket a guest\n' +
  'defines.  /var/run/cluster/fence is a reasonable choice; the\n' +
  'directory must be created beforehand.\n';

export const SERIAL_MODE =
  "Guests reach this host either through a serial port ('serial') or\n" +
  "through a VMChannel ('vmchannel').\n";

export const BACKEND_INTRO =
  'A backend module carries out the requests, talking to the\n' +
  'hypervisor or to a management layer.\n';

export const LIBVIRT =
  'The libvirt backend acts on the virtual machines of this host\n' +
  'only.  Where virtual machines migrate between hosts, use a\n' +
  'cluster-wide backend such as amqp instead.\n';

export const CPG_INTRO =
  'The cpg backend shares virtual machine ownership between the\n' +
  'hosts of a corosync cluster and performs actions through libvirt.\n';

export const CPG_NAME_MODE =
  'The cpg backend tracks virtual machines by UUID or by name.  UUIDs\n' +
  'are unique cluster-wide and recommended; name mode exists for\n' +
  'compatibility with fence_xvmd.\n';

export const AMQP_INTRO =
  'The amqp backend sends each request through an AMQP 1.0 broker to\n' +
  'the host currently running the virtual machine, so guests may\n' +
  'migrate between hosts.  Every host of the cluster uses the same\n' +
  'broker, cluster name and cluster key, and its own host ID.\n';

export const CLUSTER_KEY_FILE =
  'Messages between hosts are signed with a cluster key file, which\n' +
  'every host needs and guests must never see.  Create it with\n' +
  "'virtfence keygen'.\n";
