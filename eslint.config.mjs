// One linter and one formatter, as Effect's own packages use them: typescript-eslint for the rules,
// dprint (through @effect/eslint-plugin) for the layout. `npm run lint -- --fix` formats.
import * as effectEslint from "@effect/eslint-plugin";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "scratch/**", "coverage/**", "bench/results.json"] },
  ...tseslint.configs.recommended,
  ...effectEslint.configs.dprint.map((config) => ({ ...config, files: ["**/*.ts"] })),
  {
    files: ["**/*.ts"],
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force",
        },
      }],
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/ban-ts-comment": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "require-yield": "off",
    },
  },
);
