// The same host against @rjsf/core 5 (this workspace's own node_modules hold version 5).
import Form from '@rjsf/core';
import { customizeValidator } from '@rjsf/validator-ajv8';
import Ajv2020 from 'ajv/dist/2020';
import { mount } from '../src/host.jsx';

const validator = customizeValidator({ AjvClass: Ajv2020 });
window.ExactForms = { rjsf: 5, mount: (...args) => mount(Form, validator, ...args) };
