/** The host's USB list over a sysfs fixture (test/fixtures/sysfs/usb: there is no USB on the test machine). */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listHostUsb } from '../../../src/host/usb-devices.js';

const FIX = path.resolve(__dirname, '../../fixtures/sysfs/usb');

describe('host USB devices from sysfs', () => {
  it('lists devices by bus and port, without root hubs and interfaces, with the interface driver', () => {
    expect(listHostUsb(FIX)).toEqual([
      { address: '1-1', bus: 1, port: '1', vendor: '05e3', product: '0610', manufacturer: 'GenesysLogic', name: 'USB2.1 Hub', speed: '480' },
      { address: '1-1.4', bus: 1, port: '1.4', vendor: '046d', product: 'c52b', manufacturer: 'Logitech', name: 'USB Receiver', speed: '12', driver: 'usbhid' },
      { address: '2-3', bus: 2, port: '3', vendor: '0403', product: '6001', manufacturer: 'FTDI', name: 'FT232R USB UART', speed: '12', driver: 'cdc_acm' },
    ]);
  });
  it('a host without /sys/bus/usb has none', () => {
    expect(listHostUsb(path.join(FIX, 'nowhere'))).toEqual([]);
  });
});
