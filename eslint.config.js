// ESLint flat config. The sans-IO rule: protocol cores take time, randomness and crypto as
// arguments, so they may not import Node built-ins or touch timers, clocks or Math.random.
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

const builtins = builtinModules.filter((m) => !m.startsWith('_'));

export const sansIoRules = {
  'no-restricted-imports': [
    'error',
    {
      paths: builtins.map((name) => ({ name, message: 'The sans-IO core takes no Node built-ins: inject what it needs.' })),
      patterns: [{ group: ['node:*', ...builtins.map((b) => `${b}/*`)], message: 'The sans-IO core takes no node:* imports: inject what it needs.' }],
    },
  ],
  'no-restricted-globals': [
    'error',
    ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask'].map((name) => ({
      name,
      message: 'The sans-IO core has no timers: report deadlines through pollTimeout().',
    })),
    { name: 'Date', message: 'The sans-IO core reads no clock: time is an argument.' },
    { name: 'performance', message: 'The sans-IO core reads no clock: time is an argument.' },
    { name: 'process', message: 'The sans-IO core does not touch the process.' },
    { name: 'crypto', message: 'The sans-IO core gets crypto and randomness from the injected provider.' },
  ],
  'no-restricted-properties': [
    'error',
    { object: 'Math', property: 'random', message: 'The sans-IO core gets randomness from the injected provider.' },
    { object: 'globalThis', property: 'setTimeout', message: 'No timers in the sans-IO core.' },
    { object: 'globalThis', property: 'Date', message: 'No clock in the sans-IO core.' },
  ],
};

export const sansIoFiles = ['src/transport/quic/**/*.ts', 'src/relay/protocol/**/*.ts'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test-results/**', '.scratch/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  { files: sansIoFiles, rules: sansIoRules },
);
