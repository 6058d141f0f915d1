import { configDefaults } from 'vitest/config';
import { qllmProject } from '../vitest.shared.ts';

// examples/third-party-plugin is its own workspace package and vitest project.
export default qllmProject('examples', { exclude: [...configDefaults.exclude, 'third-party-plugin/**'] });
