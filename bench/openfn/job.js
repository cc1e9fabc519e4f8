// Flow F1 as an OpenFn job, in the form @openfn/compiler would emit (the
// compiler is not on npm, so it is written compiled by hand): the job DSL
//
//   each('$.data.interventions[*]',
//     post('/api/v2/cases', state => ({ data: toCase(state.data) })));
//   fn(state => ({ ...state, data: { posted: state.references.length }, references: [] }));
//
// toCase (mapping.js, appended by run.js) maps the proGres intervention fields refbridge's F1 maps
// (mapping/intervention.go) with the Gambella profile's code tables inlined
// (profiles/gambella.yaml), as the reference's job held its tables. It does
// not search for an existing case, validate, check consent or restrict to
// the ISP allow-list, and sets no deterministic service unique_id: the
// baseline is the reference's happy path, a lower bound on OpenFn's cost.
import { each, post, fn } from '@openfn/language-http';
export * from '@openfn/language-http';

export default [
  each('$.data.interventions[*]', post('/api/v2/cases', state => ({ data: toCase(state.data) }))),
  fn(state => ({ ...state, data: { posted: state.references.length }, references: [] })),
];
