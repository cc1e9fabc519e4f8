// Flow F1 as an OpenFn job doing what refbridge does per referral (apart from
// durability, validation, consent and the ISP filter): find the child's case
// by UNHCR individual number, create it if there is none, read it back, and
// send DTP the Pending Acknowledgement callback (mutual TLS and the APIM
// subscription key). Compiled form, as job.js; run.js appends mapping.js.
// state.configuration: { baseUrl, username, password } for Primero and
// dtp: { url, key, tls: { ca, cert, key } } for DTP. language-http refuses an
// absolute URL outside baseUrl, so the callback runs with DTP's configuration,
// as a second workflow step with its own credential would.
import { each, get, post, fn } from '@openfn/language-http';
export * from '@openfn/language-http';

const PENDING_TEXT = 'Referral received in Primero, pending acknowledgement';

const fileIntervention = state => {
  const iv = state.data;
  const primero = state.configuration;
  const number = trim(iv.progres_interventionnumber);
  return get('/api/v2/cases', { query: { unhcr_individual_no: trim(iv['individuals.progres_id']) } })(state)
    .then(s => (s.data.data.length > 0 ? { ...s, data: { data: s.data.data[0] } } : post('/api/v2/cases', { data: toCase(iv) })(s)))
    .then(s => get(`/api/v2/cases/${s.data.data.id}`)(s))
    .then(s => {
      const c = s.data.data;
      const { dtp } = primero;
      const body = {
        case_id: c.case_id, primero_user: c.owned_by, progres_interventionnumber: number,
        status: 'Pending Acknowledgement', closure_reason: PENDING_TEXT,
      };
      return post(dtp.url, body, { headers: { 'Ocp-Apim-Subscription-Key': dtp.key } })({ ...s, configuration: { tls: dtp.tls } });
    })
    .then(s => ({ ...s, configuration: primero, references: [], filed: (state.filed || 0) + 1 }));
};

export default [
  each('$.data.interventions[*]', fileIntervention),
  fn(state => ({ ...state, data: { posted: state.filed }, references: [] })),
];
