import { findGuestSockets, inSocketDirectory } from '../../src/listeners/serial/domain-xml.js';

const LIVE_XML = `<domain type='test' id='1'>
  <name>vm1</name>
  <uuid>11111111-0000-4000-8000-000000000001</uuid>
  <devices>
    <!-- <serial type='unix'><source mode='bind' path='/commented/out.sock'/></serial> -->
    <serial type='unix'>
      <source mode='bind' path='/run/fence/vm1.sock'/>
      <target port='1'/>
    </serial>
    <serial type="unix">
      <source path="/run/fence/other/vm1-b.sock" mode="bind"/>
      <target port="2"/>
    </serial>
    <serial type='pty'><source path='/dev/pts/3'/><target port='0'/></serial>
    <serial type='unix'><source mode='connect' path='/run/fence/client.sock'/></serial>
    <console type='unix'><source mode='bind' path='/run/fence/vm1.sock'/><target type='serial' port='1'/></console>
    <channel type='unix'>
      <source mode='bind' path='/run/fence/vm1&amp;chan'/>
      <target type='guestfwd' address='10.0.2.179' port='1229'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/run/fence/vm1.virtio'/>
      <target type='virtio' name='org.example.fence'/>
    </channel>
    <channel type='pty'><target type='virtio' name='x'/></channel>
    <serial type='unix'/>
  </devices>
</domain>`;

describe('serial listener: guest sockets in domain XML', () => {
  it('serial mode takes bound unix serial sources only, in order, whatever the quotes and attribute order', () => {
    expect(findGuestSockets(LIVE_XML, 'serial')).toEqual([
      '/run/fence/vm1.sock',
      '/run/fence/other/vm1-b.sock',
    ]);
  });

  it('vmchannel mode takes bound unix channels of any target type and decodes entities', () => {
    expect(findGuestSockets(LIVE_XML, 'vmchannel')).toEqual([
      '/run/fence/vm1&chan',
      '/run/fence/vm1.virtio',
    ]);
  });

  it('finds nothing outside <devices> or in a domain without sockets', () => {
    expect(
      findGuestSockets(
        "<domain><serial type='unix'><source mode='bind' path='/x'/></serial></domain>",
        'serial',
      ),
    ).toEqual([]);
    expect(findGuestSockets('<domain><devices/></domain>', 'serial')).toEqual([]);
    expect(findGuestSockets('', 'vmchannel')).toEqual([]);
  });

  it('the path filter keeps sockets directly in the directory, ignoring leading and trailing slashes', () => {
    expect(inSocketDirectory('/run/fence/vm1.sock', undefined)).toBe(true);
    expect(inSocketDirectory('/run/fence/vm1.sock', '/run/fence')).toBe(true);
    expect(inSocketDirectory('/run/fence/vm1.sock', 'run/fence/')).toBe(true);
    expect(inSocketDirectory('/run/fence/other/vm1-b.sock', '/run/fence')).toBe(false);
    expect(inSocketDirectory('/run/fencing/vm1.sock', '/run/fence')).toBe(false);
    expect(inSocketDirectory('/run/vm1.sock', '/run/fence')).toBe(false);
  });
});
