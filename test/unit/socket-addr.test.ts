import { describe, expect, it } from 'vitest';
import { SocketAddr } from '../../src/identity/index.ts';
import { DecodeError } from '../../src/util/errors.ts';

describe('SocketAddr parsing and display (Rust std::net rules)', () => {
  const good: Array<[string, string]> = [
    ['1.2.3.4:5', '1.2.3.4:5'],
    ['0.0.0.0:0', '0.0.0.0:0'],
    ['255.255.255.255:65535', '255.255.255.255:65535'],
    ['[::]:1', '[::]:1'],
    ['[::1]:443', '[::1]:443'],
    ['[2001:DB8::1]:80', '[2001:db8::1]:80'],
    ['[2001:db8:0:0:1:0:0:1]:1', '[2001:db8::1:0:0:1]:1'],
    ['[2001:0db8:0000:0000:0000:0000:0000:0001]:1', '[2001:db8::1]:1'],
    ['[1:0:1:0:1:0:1:0]:1', '[1:0:1:0:1:0:1:0]:1'],
    ['[::ffff:1.2.3.4]:9', '[::ffff:1.2.3.4]:9'],
    ['[::ffff:0102:0304]:9', '[::ffff:1.2.3.4]:9'],
    ['[::1.2.3.4]:9', '[::102:304]:9'],
    ['[fe80::]:7', '[fe80::]:7'],
  ];
  it.each(good)('parses %s and prints %s', (input, printed) => {
    expect(SocketAddr.parse(input).toString()).toBe(printed);
  });

  const bad = [
    '1.2.3.4',
    '1.2.3:4',
    '01.2.3.4:5',
    '1.2.3.256:5',
    '1.2.3.4:65536',
    '1.2.3.4:-1',
    '1.2.3.4:08',
    '::1:5',
    '[::1]',
    '[::1]5',
    '[fe80::1%eth0]:5',
    '[1:2:3:4:5:6:7:8:9]:1',
    '[1::2::3]:1',
    '[12345::]:1',
    '[::ffff:1.2.3]:1',
    ' 1.2.3.4:5',
    'localhost:80',
  ];
  it.each(bad)('rejects %j with a DecodeError', (input) => {
    expect(() => SocketAddr.parse(input)).toThrow(DecodeError);
  });
});
