// Matmul implementations we compare against. Each loads its package from bench/peers/node_modules
// (installed with `npm --prefix bench/peers install`); a missing one reports why instead of failing.
//
// A peer's `prepare(M, K, N)` allocates inputs and returns `run(reps)`, which does `reps` matmuls
// and waits until the last result is really computed (read back or queue drained).
import { create } from 'webgpu';

export interface Peer {
  name: string;
  prepare(M: number, K: number, N: number): Promise<{ run: (reps: number) => Promise<void>; dispose: () => void }>;
}

export type PeerLoad = { peer: Peer } | { name: string; missing: string };

// Specifiers held in a variable: typechecking must not need the peers installed.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (pkg: string): Promise<any> => import(pkg);

const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

/** The baseline every reader can check: a straightforward i-k-j triple loop. */
export const plainJs: Peer = {
  name: 'plain JS (i-k-j loop)',
  async prepare(M, K, N) {
    const a = random(M * K);
    const b = random(K * N);
    const c = new Float32Array(M * N);
    return {
      async run(reps) {
        for (let r = 0; r < reps; r++) {
          c.fill(0);
          for (let i = 0; i < M; i++) {
            for (let k = 0; k < K; k++) {
              const aik = a[i * K + k]!;
              for (let j = 0; j < N; j++) c[i * N + j]! += aik * b[k * N + j]!;
            }
          }
        }
      },
      dispose() {},
    };
  },
};

async function loadTfjs(): Promise<Peer> {
  // The WebGPU backend registers itself at import only if navigator.gpu exists: give it Dawn.
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]) }, configurable: true, writable: true });
  const tf = await load('@tensorflow/tfjs-core');
  await load('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed');
  await tf.ready();
  return {
    name: 'TensorFlow.js webgpu',
    async prepare(M, K, N) {
      const a = tf.tensor2d(random(M * K), [M, K]);
      const b = tf.tensor2d(random(K * N), [K, N]);
      return {
        async run(reps) {
          let last: { data(): Promise<unknown>; dispose(): void } | null = null;
          for (let r = 0; r < reps; r++) {
            last?.dispose();
            last = tf.matMul(a, b);
          }
          await last!.data(); // waits for every queued matmul
          last!.dispose();
        },
        dispose: () => tf.dispose([a, b]),
      };
    },
  };
}

async function loadGpuJs(): Promise<Peer> {
  const { GPU } = (await load('gpu.js')) as { GPU: GpuJsCtor };
  // gpu.js runs on WebGL (headless-gl in Node) or its CPU mode; it has no WebGPU mode.
  const mode = GPU.isHeadlessGLSupported ? 'headlessgl' : 'cpu';
  const gpu = new GPU({ mode });
  return {
    name: `gpu.js (${mode})`,
    async prepare(M, K, N) {
      const kernel = gpu
        .createKernel(function (this: { thread: { x: number; y: number }; constants: { K: number } }, a: number[][], b: number[][]) {
          let s = 0;
          for (let k = 0; k < this.constants.K; k++) s += a[this.thread.y]![k]! * b[k]![this.thread.x]!;
          return s;
        })
        .setConstants({ K })
        .setOutput([N, M]);
      const rows = (n: number, m: number) => Array.from({ length: n }, () => random(m));
      const a = rows(M, K);
      const b = rows(K, N);
      return {
        async run(reps) {
          for (let r = 0; r < reps; r++) kernel(a, b);
        },
        dispose: () => kernel.destroy?.(),
      };
    },
  };
}

interface GpuJsCtor {
  new (o: { mode: string }): { createKernel(f: unknown): GpuJsKernel };
  isHeadlessGLSupported: boolean;
}
interface GpuJsKernel {
  setConstants(c: object): GpuJsKernel;
  setOutput(o: number[]): GpuJsKernel;
  (...args: unknown[]): unknown;
  destroy?(): void;
}

async function loadOnnx(): Promise<Peer> {
  const ort = await load('onnxruntime-node');
  return {
    name: 'onnxruntime-node (CPU)',
    async prepare(M, K, N) {
      const session = await ort.InferenceSession.create(matmulModel(M, K, N), { executionProviders: ['cpu'] });
      const feeds = { A: new ort.Tensor('float32', random(M * K), [M, K]), B: new ort.Tensor('float32', random(K * N), [K, N]) };
      return {
        async run(reps) {
          for (let r = 0; r < reps; r++) await session.run(feeds);
        },
        dispose: () => void session.release(),
      };
    },
  };
}

// ---- a one-node ONNX model (C = MatMul(A, B)), encoded by hand: protobuf is small enough --------

const varint = (n: number): number[] => {
  const out: number[] = [];
  for (; n > 127; n = Math.floor(n / 128)) out.push((n % 128) | 128);
  return [...out, n];
};
const field = (no: number, bytes: number[]) => [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes];
const int = (no: number, n: number) => [...varint(no << 3), ...varint(n)];
const str = (no: number, s: string) => field(no, [...Buffer.from(s)]);

function valueInfo(name: string, dims: number[]): number[] {
  const shape = dims.flatMap((d) => field(1, int(1, d)));
  const tensorType = [...int(1, 1 /* FLOAT */), ...field(2, shape)];
  return [...str(1, name), ...field(2, field(1, tensorType))];
}

export function matmulModel(M: number, K: number, N: number): Uint8Array {
  const node = [...str(1, 'A'), ...str(1, 'B'), ...str(2, 'C'), ...str(4, 'MatMul')];
  const graph = [...field(1, node), ...str(2, 'matmul'), ...field(11, valueInfo('A', [M, K])), ...field(11, valueInfo('B', [K, N])), ...field(12, valueInfo('C', [M, N]))];
  return Uint8Array.from([...int(1, 8 /* IR version */), ...field(8, int(2, 13) /* opset 13 */), ...field(7, graph)]);
}

/** Loads every installed peer; a missing package or a failing load is reported, not thrown. */
export async function loadPeers(): Promise<PeerLoad[]> {
  const loads: [string, () => Promise<Peer>][] = [
    ['TensorFlow.js webgpu', loadTfjs],
    ['gpu.js', loadGpuJs],
    ['onnxruntime-node', loadOnnx],
  ];
  const out: PeerLoad[] = [{ peer: plainJs }];
  for (const [name, init] of loads) {
    try {
      out.push({ peer: await init() });
    } catch (e) {
      out.push({ name, missing: (e as Error).message.split('\n')[0]! });
    }
  }
  return out;
}
