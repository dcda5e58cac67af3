/**
 * The OpenAPI 3.1 document: the route table of contract.ts written out by hand-kept metadata,
 * with the JSON Schemas generated from the same zod schemas (`z.toJSONSchema`). The VM and
 * network definition schemas come from src/spec (the input side: what a client may send).
 */
import { z } from 'zod';
import { networkSchema } from '../definition/network.js';
import { vmSchema } from '../definition/vm.js';
import { apiErrorSchema, routes, type Route } from './contract.js';

const js = (s: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return rest;
};

const STATUS_TEXT: Record<number, string> = {
  400: 'bad input (BAD_REQUEST and other input codes)',
  401: 'missing or wrong token (TCP only)',
  404: 'no such VM, network or image',
  409: 'conflict with the current state (VM_RUNNING, VM_NOT_RUNNING, *_EXISTS, *_IN_USE)',
  413: 'the upload is over the size limit',
  422: 'the definition is invalid: issues[] lists every problem with its path',
  500: 'the operation failed',
};

export function openApiDocument(version: string): Record<string, unknown> {
  const pathsOut: Record<string, Record<string, unknown>> = {};
  for (const [id, r0] of Object.entries(routes)) {
    const r = r0 as Route;
    const oaPath = r.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const parameters: unknown[] = [];
    if (r.params) for (const k of Object.keys((r.params as z.ZodObject).shape)) parameters.push({ name: k, in: 'path', required: true, schema: { type: 'string' } });
    if (r.query) {
      const q = js(r.query, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [k, s] of Object.entries(q.properties ?? {})) parameters.push({ name: k, in: 'query', required: q.required?.includes(k) ?? false, schema: s });
    }
    const responses: Record<string, unknown> = {};
    if (r.websocket) responses['101'] = { description: 'WebSocket upgrade' };
    else if (r.text) responses['200'] = { description: 'ok', content: { [r.text]: { schema: { type: 'string' } } } };
    else responses['200'] = { description: 'ok', content: { 'application/json': { schema: r.response ? js(r.response, 'output') : {} } } };
    for (const code of [400, 401, 404, 409, 422, 500]) responses[String(code)] = { description: STATUS_TEXT[code], content: { 'application/json': { schema: { $ref: '#/components/schemas/ApiError' } } } };
    const op: Record<string, unknown> = { operationId: id, summary: r.summary, parameters, responses };
    if (r.body) op.requestBody = { required: false, content: { 'application/json': { schema: js(r.body, 'input') } } };
    if (r.upload) op.requestBody = { required: true, content: { [r.upload]: { schema: { type: 'string', format: 'binary' } } } };
    (pathsOut[oaPath] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'kvmctl API', version, description: 'kvmctl serve: VMs, networks, disks, host, events and metrics. Over TCP every route but /api/health needs Authorization: Bearer TOKEN (WebSockets: ?token=).' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { ApiError: js(apiErrorSchema, 'output'), VmDefinition: js(vmSchema, 'input'), NetworkDefinition: js(networkSchema, 'input') },
    },
    security: [{ bearer: [] }],
    paths: pathsOut,
  };
}
