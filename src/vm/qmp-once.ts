/** One QMP command over a short-lived connection (the CLI never holds QMP open). */
import { QmpClient } from '../qmp/client.js';

export async function qmpOnce(socket: string, command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
  const c = await QmpClient.connect(socket, { timeoutMs });
  try {
    return await c.execute(command, args, { timeoutMs });
  } finally {
    await c.close();
  }
}
