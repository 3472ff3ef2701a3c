// The host against @rjsf/core 6: the three lines an engine needs are the imports and `validator`.
import Form from '@rjsf/core';
import { customizeValidator } from '@rjsf/validator-ajv8';
import Ajv2020 from 'ajv/dist/2020';
import { mount } from './host.jsx';

const validator = customizeValidator({ AjvClass: Ajv2020 });
window.ExactForms = { rjsf: 6, mount: (...args) => mount(Form, validator, ...args) };
