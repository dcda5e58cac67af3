/** Every CLI command module. To add a command: write src/cli/commands/NAME.ts exporting
 * `register(program, action)` and add one line here. */
import type { Command } from 'commander';
import type { Action } from '../action.js';
import { register as importCmdline } from './import.js';
import { register as definitions } from './definitions.js';
import { register as lifecycle } from './lifecycle.js';
import { register as monitor } from './monitor.js';
import { register as console } from './console.js';
import { register as demo } from './demo.js';
import { register as host } from './host.js';
import { register as guest } from './guest.js';
import { register as net } from './net.js';
import { register as disk } from './disk.js';
import { register as image } from './image.js';
import { register as serve } from './serve.js';
import { register as ipCmd } from './ip.js';
import { register as install } from './install.js';
import { register as autostart } from './autostart.js';
import { register as cluster } from './cluster.js';
import { register as storage } from './storage.js';
import { register as backup } from './backup.js';
import { register as tasks } from './tasks.js';
import { register as volume } from './volume.js';
import { register as hotplug } from './hotplug.js';
import { register as devices } from './devices.js';

export type Register = (program: Command, action: Action) => void;

export const commands: Register[] = [definitions, lifecycle, monitor, console, demo, host, guest, net];
commands.push(importCmdline);
commands.push(disk);
commands.push(image);
commands.push(serve);
commands.push(autostart);
commands.push(install);
commands.push(ipCmd);
commands.push(cluster);
commands.push(storage);
commands.push(backup);
commands.push(tasks);
commands.push(volume);
commands.push(hotplug);
commands.push(devices);

/**
 * The long-running commands, by the top-level name they run under, with the one module that
 * registers it: a command line running one of them registers only that module (main.ts), as an
 * idle daemon keeps every command object it was given. Measured: `kvmctl serve` idles 1.6 MiB
 * smaller (BENCHMARKS.md, fifth session). Help, errors and options of the command are unchanged.
 */
export const daemons: Record<string, Register> = { serve, agent: cluster, cluster, migrate: cluster };
