// toCase and the Gambella code tables, shared by job.js and job-full.js:
// run.js appends this file to the job's source, as the compiler would
// inline a helper, because a job reaches the runtime as one module string.
const INTAKE = {
  module: 'primeromodule-cp',
  owner: 'progresv4_primero_intake@cpims-gambella.primero.org',
  status: 'open',
  requestingAgency: 'UNHCR',
  implementingAgency: 'UNICEF',
  responseType: 'service_provision',
  referral: 'external_referral',
  referralStatus: 'pending',
};

// proGres intervention type -> Primero service_type (inbound direction).
const SERVICES = {
  'Alternative Care': 'alternative_care',
  'Child Protection Service': 'focuses_non_specialized_mhpss_care',
  BID: 'focuses_non_specialized_mhpss_care',
  BIA: 'focuses_non_specialized_mhpss_care',
  'Food Service': 'food',
  'Safehouse Service': 'security_e_g_safe_shelter',
  'Education Service': 'education_formal',
  'Family Reunification Service': 'family_tracing_and_reunification',
  'Family Tracing and Reunification': 'family_tracing_and_reunification',
  'Psychosocial Service': 'basic_psychosocial_support',
  'NFI/Clothes/Shoes Service': 'non_food_items',
  'Livelihoods Service': 'livelihoods',
  'Other Service': 'other_please_specify',
  'Legal Assistance Service': 'legal_support',
  'Legal Assistance': 'legal_support',
  'Registration Service': 'documentation',
  'Sexual and reproductive health': 'sexual_and_reproductive_health',
  Shelter: 'shelter',
  WASH: 'wash',
  'Water/Sanitation Service': 'wash',
  'Durable solution (in coordination with UNHCR)': 'durable_solution_in_coordination_with_unhcr',
  Relocation: 'relocation',
  Other: 'other_please_specify',
};

const SEX = {
  125080000: 'female', Female: 'female',
  125080001: 'male', Male: 'male',
  125080002: 'other_b25f252',
};

const LANGUAGES = {
  Anyuak: 'language1', Nuer: 'language2', Dinka: 'language3', Bari: 'language4', Amharic: 'language5',
  Other: 'language6', Swahili: 'language6', Zande: 'language6', Bembe: 'language7', Somali: 'language8',
  Acholi: 'language10', Murle: 'murle_fce1c91', Arabic: '_arabic', English: '_english', French: '_french',
  Oromo: '_oromo', Luo: '_luo',
};

const lookupName = v => (v && typeof v === 'object' ? v.Name : v) || '';
const trim = v => (typeof v === 'string' ? v.trim() : '');

function ageOn(dob, now) {
  const b = new Date(dob);
  let age = now.getUTCFullYear() - b.getUTCFullYear();
  const m = now.getUTCMonth() - b.getUTCMonth();
  if (m < 0 || (m === 0 && now.getUTCDate() < b.getUTCDate())) age--;
  return age;
}

function referralNotes(desc, comments) {
  const lines = [];
  const text = trim((desc || '').replace(/<[^>]*>/g, ''));
  if (text) lines.push(text);
  if (comments) {
    for (const c of JSON.parse(comments)) {
      if (trim(c.Text)) lines.push(trim(c.Text));
    }
  }
  return lines.join('\n');
}

function toCase(iv) {
  const dob = trim(iv['individuals.progres_dateofbirth']).slice(0, 10);
  const language = LANGUAGES[lookupName(iv['languages.progres_languagecodeid'])];
  const address = [1, 2, 3, 4, 5]
    .map(n => lookupName(iv[`individuals.progres_coalocationlevel${n}`]))
    .concat([iv['individuals.progres_coalocationlevel6'] || ''])
    .map(trim)
    .filter(Boolean)
    .join(' ');
  const number = trim(iv.progres_interventionnumber);
  const c = {
    status: INTAKE.status,
    module_id: INTAKE.module,
    owned_by: INTAKE.owner,
    name_first: iv['individuals.progres_givenname'],
    name_middle: iv['individuals.progres_middlename'],
    name_last: iv['individuals.progres_familyname'],
    name_nickname: iv['individuals.progres_commonyusedname'],
    date_of_birth: dob,
    age: ageOn(dob, new Date()),
    sex: SEX[trim(iv['individuals.progres_sex'])],
    unhcr_id_no: trim(lookupName(iv['individuals.progres_registrationgroupid'])),
    unhcr_individual_no: trim(iv['individuals.progres_id']),
    telephone_current: iv['individuals.progres_primaryphonenumber'],
    address_current: address,
    language: language ? [language] : undefined,
    services_section: [
      {
        service_response_type: INTAKE.responseType,
        service_type: SERVICES[trim(iv['interventiontype.progres_description'])],
        service_response_day_time: iv.progres_interventionstartdate,
        service_implementing_agency: INTAKE.implementingAgency,
        service_referral_notes: referralNotes(iv.progres_interventiondescription, iv.progres_reasonforreferral),
        service_referral: INTAKE.referral,
        service_request_external: true,
        service_request_title: iv['user.title'],
        service_request_agency: INTAKE.requestingAgency,
        service_request_phone: iv['user.mobilephone'],
        service_request_email: iv['user.internalemailaddress'],
        unhcr_referral_status: INTAKE.referralStatus,
        progres_interventionnumber: number,
      },
    ],
  };
  for (const k of Object.keys(c)) {
    if (c[k] === undefined || c[k] === '') delete c[k];
  }
  return c;
}
