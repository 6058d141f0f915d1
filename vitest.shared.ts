// Shared by every package's vitest.config.ts: tests import workspace packages from source (the `source`
// export condition), so `pnpm test` needs no build first.
import { defineProject, type UserWorkspaceConfig } from 'vitest/config';

export function qllmProject(name: string, extra: UserWorkspaceConfig['test'] = {}) {
  return defineProject({
    resolve: { conditions: ['source', 'import', 'module', 'node', 'default'] },
    ssr: { resolve: { conditions: ['source', 'import', 'module', 'node', 'default'], externalConditions: ['source'] } },
    test: { name, testTimeout: 120_000, hookTimeout: 300_000, ...extra },
  });
}
